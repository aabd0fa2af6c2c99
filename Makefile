# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Each creates .venv on first use and installs what it needs; nothing is installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job: start the sandbox, full sync of the three systems into .revsync/demo/revsync.db,
# then a second cycle that must write nothing. DEMO_ARGS="--accounts 1000 --json" to vary it.
demo: $(STAMP)
	$(BIN)/revsync demo $(DEMO_ARGS)

test: $(STAMP) lint typecheck pytest

# ruff, then the import contract ([tool.importlinter] in pyproject.toml: layers, no
# sandbox in product code, no cycles)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy connectors sync mapping sandbox web cli.py scheduler.py

# PYTEST_XDIST: pytest-xdist options; by default two worker processes
# (a sandbox and its client share one process, so one pytest uses about one core); each
# test module runs whole on one worker, so a module's shared sandbox is built once, and
# modules go out in collection order, the long fleet and integration modules first
# (xdist's default order, most tests first, hands those few-test modules out last).
# PYTEST_XDIST= (empty) runs the suite in one process.
PYTEST_XDIST ?= -n 2 --dist loadscope --no-loadscope-reorder

pytest: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_XDIST) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
