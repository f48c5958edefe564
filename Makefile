# The two commands the README promises: `make run` and `make test`.
# Each creates .venv with the Python it finds and installs only when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test lint install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(FLASK) db upgrade
	$(FLASK) storage init
	$(FLASK) demo seed
	$(FLASK) run --host 127.0.0.1 --port 5000

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The suite runs twice: on SQLite, then on PostgreSQL (tests that need no database run once).
test: lint
	$(BIN)/python -m pytest
	GREENLIGHT_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest
