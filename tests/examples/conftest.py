"""The example third-party connector (``examples/mycrm``), installed as a plugin.

``mycrm_site`` installs the package into a throwaway directory the way pip lays out
an installed distribution: the package plus a ``.dist-info`` whose
``entry_points.txt`` is written from the plugin's own ``pyproject.toml`` (offline, no
build backend needed). ``mycrm_installed`` puts that directory on ``sys.path`` only
for the module that asks: revsync then finds the connector through the
``revsync.connectors`` entry point alone, exactly as after ``pip install revsync-mycrm``.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import registry

from .mycrm_stub import MyCrmStub, serve

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "mycrm"


@pytest.fixture(scope="session")
def mycrm_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed plugin (package + dist-info)."""
    target = tmp_path_factory.mktemp("mycrm-site")
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for package in ("revsync_mycrm",):
        shutil.copytree(PLUGIN / package, target / package)
    dist = target / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n", encoding="utf-8")
    lines = []
    for group, eps in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in eps.items())
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def mycrm_installed(mycrm_site: Path) -> Iterator[Path]:
    """The plugin importable and registered for this module's tests (gone after)."""
    sys.path.insert(0, str(mycrm_site))
    registry.reload()
    try:
        yield mycrm_site
    finally:
        sys.path.remove(str(mycrm_site))
        for name in [m for m in sys.modules if m == "revsync_mycrm" or m.startswith("revsync_mycrm.")]:
            del sys.modules[name]
        registry.reload()


@pytest.fixture
def mycrm_stub() -> Iterator[MyCrmStub]:
    with serve(MyCrmStub()) as stub:
        yield stub
