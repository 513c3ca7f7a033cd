# PathPT Studio. Two entry points: `make run` and `make test`. Both build .venv from pinned versions.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): constraints.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[gui,test,cluster]"
	touch $(STAMP)

# Opens the GUI on the ready demo project; with no display, runs it offscreen and writes screenshots + exports.
run: $(STAMP)
	$(VENV)/bin/pathpt-gui --demo --demo-dir demo_out/project

test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# ruff; import-linter (layers, no Qt in the engine: [tool.importlinter]); mypy on the engine ([tool.mypy])
lint: $(STAMP)
	$(VENV)/bin/ruff check pathpt_engine pathpt_gui tests bench
	$(VENV)/bin/lint-imports --cache-dir $(VENV)/.import_linter_cache
	$(VENV)/bin/mypy --cache-dir $(VENV)/.mypy_cache

clean:
	rm -rf $(VENV) build *.egg-info demo_out pathpt-demo-out
