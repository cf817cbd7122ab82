# mapp — the two commands: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint e2e-deps format messages clean

# Create the virtual environment and install the locked dependencies once (again when they change).
$(STAMP): pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## make run [DEMO=1]: web + Celery worker + beat on embedded Postgres/Redis (or DATABASE_URL/REDIS_URL)
run: $(STAMP)
	$(BIN)/mapp run $(if $(DEMO),--demo,)

## make test: the whole suite against real Postgres and Redis, including the browser tests
test: $(STAMP) e2e-deps
	$(BIN)/mapp test $(PYTEST_ARGS)

## The browser tests drive Debian's Chromium through Playwright (no browser download).
e2e-deps:
	@bash scripts/ensure-chromium.sh

## make lint: ruff, formatting, mypy, and migrations in step with the models
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/mapp manage makemigrations --check --dry-run

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Re-extract translatable strings into locale/*/LC_MESSAGES/django.po and compile them.
messages: $(STAMP)
	$(BIN)/python manage.py makemessages --locale ja --locale en --ignore '.venv/*' --ignore 'var/*' --no-obsolete
	$(BIN)/python scripts/compile_messages.py

clean:
	rm -rf $(VENV) var/staticfiles
