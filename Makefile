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

# Two test processes (most tests wait on a database, a browser or a child process, so two share
# two cores well: about half the wall time of one); the slowest tests are listed at the end.
test: lint
	$(BIN)/pytest -q -n 2 --durations=15

bench: $(STAMP)
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) .carebot .pytest_cache .mypy_cache .ruff_cache *.egg-info
