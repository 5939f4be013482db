# Set-up is two commands: `make run` (site with demo data, SQLite, Celery eager) and
# `make test` (the whole suite on PostgreSQL + Redis + a real Celery worker + Chromium).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Django 6.1 needs Python 3.12: take it from pyenv (.python-version) wherever it lives.
PYTHON312 ?= $(shell command -v python3.12 2>/dev/null || ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1 || echo python3.12)
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ilm
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
# Both cores: tests needing a real Celery worker stay together in one xdist group.
PYTEST_ARGS ?= -n auto --dist loadgroup

.PHONY: venv run test test-fast lint format bench chromium clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) manage.py migrate --noinput
	ILM_DEMO_SYSTEMS=1 $(PY) manage.py load_demo
	ILM_DEMO_SYSTEMS=1 $(PY) manage.py runserver 127.0.0.1:8000

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

# Hypothesis profiles (tests/hypothesis_profiles.py): `full` runs each property's own count
# of examples (make test, and so CI), `fast` at most 50 a property.
test: venv chromium
	HYPOTHESIS_PROFILE=full DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	  $(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv
	HYPOTHESIS_PROFILE=fast $(PY) -m pytest -m "not browser and not integration" $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=ilm_site.settings.production SECRET_KEY=lint-only-$$(date +%s)-0123456789abcdefghijklmnopqrstuvwxyz \
	  ALLOWED_HOSTS=ilm.example.com ILM_AUDIT_KEY=lint-only-audit-key-$$(date +%s)-0123456789abcdef \
	  ILM_SECRET_KEYS=$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	  $(PY) manage.py check --deploy --fail-level WARNING

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv
	DATABASE_URL=$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/ilm_bench} \
	  $(PY) -m tests.bench.run

clean:
	rm -rf $(VENV) db.sqlite3 artifacts .pytest_cache .import_linter_cache
