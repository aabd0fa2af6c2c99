"""The import contract (``[tool.importlinter]`` in pyproject.toml) holds for the tree,
and breaks on each kind of import it exists to stop.

Each case copies the packages to a scratch directory, adds one bad import, and runs
``lint-imports`` there (a subprocess whose ``sys.path`` starts at the copy).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("web", "sync", "mapping", "connectors", "sandbox")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, timeout=120, check=False)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_every_contract(pristine: Path) -> None:
    done = _lint(pristine)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("sync/views.py", "from sync import pull", "No cycles are allowed in sync"),
    ("sync/link.py", "from sync.pull import Puller", "No cycles are allowed in sync"),
    ("mapping/canonical.py", "from sync import store", "mapping is not allowed to import sync"),
    ("connectors/base.py", "from mapping import fieldmap", "connectors is not allowed to import mapping"),
    ("sync/views.py", "import scheduler", "sync is not allowed to import scheduler"),
    ("web/app.py", "import cli", "web is not allowed to import cli"),
    ("sync/plan.py", "from sandbox import schema", "sync is not allowed to import sandbox"),
    ("sandbox/server.py", "from sync import jobs", "sandbox is not allowed to import sync"),
])
def test_a_bad_import_breaks_the_contract(pristine: Path, tmp_path: Path, module: str, line: str,
                                          broken: str) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(pristine, tree)
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    done = _lint(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    assert broken in done.stdout, done.stdout
