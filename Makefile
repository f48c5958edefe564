# The two commands the README promises: `make run` and `make test`.
# Each creates .venv with the Python it finds and installs only when pyproject.toml changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test lint install browser

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

# The web server and one job worker (with the periodic tasks); Ctrl-C stops both.
run: $(VENV)/.installed-run
	$(FLASK) db upgrade
	$(FLASK) storage init
	$(FLASK) demo seed
	@$(FLASK) worker --workers 2 --periodic & worker=$$!; \
	  $(FLASK) run --host 127.0.0.1 --port 5000 & web=$$!; \
	  trap 'kill $$worker $$web 2>/dev/null; wait' INT TERM; \
	  wait $$web; kill $$worker 2>/dev/null; wait

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The browser tests drive Debian's Chromium; install it where we may (root with apt), else
# those tests skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing and cannot be installed here: browser tests will skip"; \
	  fi; }

# The suite runs twice, side by side: on SQLite (printed as it goes), and on PostgreSQL (tests
# that need no database run once), whose output is kept in $(PG_LOG) and printed after. Each
# pass spends much of its time waiting on servers it started, so together they take little
# longer than the slower one. The PostgreSQL pass gets Redis databases of its own.
PG_LOG := test-artifacts/pytest-postgresql.log
# e.g. make test PYTEST_ARGS='tests/test_audit.py -x'
PYTEST_ARGS ?=
test: lint browser
	@mkdir -p test-artifacts
	@GREENLIGHT_TEST_DATABASE_URL=$(PG_TEST_URL) \
	  GREENLIGHT_TEST_QUEUE_REDIS_URL=redis://127.0.0.1:6379/12 \
	  GREENLIGHT_TEST_REDIS_URL=redis://127.0.0.1:6379/14 \
	  $(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) > $(PG_LOG) 2>&1 & pg=$$!; \
	  trap 'kill $$pg 2>/dev/null' INT TERM; \
	  $(BIN)/python -m pytest $(PYTEST_ARGS); sqlite=$$?; \
	  wait $$pg; postgresql=$$?; \
	  echo; echo "==== the PostgreSQL pass ($(PG_LOG))"; cat $(PG_LOG); \
	  echo; echo "SQLite pass: exit $$sqlite; PostgreSQL pass: exit $$postgresql"; \
	  [ $$sqlite -eq 0 ] && [ $$postgresql -eq 0 ]

# Every benchmark in bench/ (not the _helpers), each with its defaults; see bench/README.md.
.PHONY: bench
bench: $(VENV)/.installed-test
	@for script in bench/[!_]*.py; do \
	  echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done
