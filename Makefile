# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv, install, serve carebot on the embedded defaults (web chat + inbox)
#   make test  - create .venv, install, run ruff, mypy and the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "carebot needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/carebot serve

lint: $(STAMP)
	$(BIN)/ruff check carebot adapters tests bench
	$(BIN)/mypy carebot adapters

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) .carebot .pytest_cache .mypy_cache .ruff_cache *.egg-info
