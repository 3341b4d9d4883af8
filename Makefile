# Kyu: every entry point. `make help` lists them.
# DATABASE_URL points everything at another database (a Supabase project) instead of the local cluster.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
SUPABASE := node_modules/.bin/supabase
STAMP := .local/stamps
DB_URL = $(shell scripts/db.sh url)
SYSTEM_PACKAGES := postgresql-15 postgresql-15-cron postgresql-15-pgtap pgtap postgresql-15-plpgsql-check \
	postgresql-contrib tesseract-ocr tesseract-ocr-jpn poppler-utils fonts-ipafont-gothic \
	libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
WORKER_ARGS ?=
# the handler modules make worker / queue-process load (the engine has no default set)
HANDLERS ?= python_worker.receipts.jobs

.PHONY: help deps db db-stop db-reset migrate render worker queue-status queue-process \
	queue-dead-letter demo test test-sql test-py test-mutations lint check-functions bench bench-backlog bench-scale clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP)/system: scripts/install_system.sh
	@mkdir -p $(STAMP)
	scripts/install_system.sh $(SYSTEM_PACKAGES)
	@touch $@

$(STAMP)/venv: pyproject.toml $(STAMP)/system
	@mkdir -p $(STAMP)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[dev,receipts]'
	@touch $@

$(STAMP)/node: package.json
	@mkdir -p $(STAMP)
	npm install --no-audit --no-fund --silent
	@touch $@

deps: $(STAMP)/system $(STAMP)/venv $(STAMP)/node ## install system packages, the Python venv and the Supabase CLI

db: $(STAMP)/system ## start the local PostgreSQL 15 + pg_cron cluster on 127.0.0.1:54322 (idempotent)
	@scripts/db.sh start

db-stop: ## stop the local cluster
	@scripts/db.sh stop

db-reset: $(STAMP)/system ## delete and recreate the local cluster (empty; run make migrate)
	@scripts/db.sh reset

render: ## re-render the initial migrations from sql/
	@scripts/render_migrations.sh

migrate: db $(STAMP)/node ## apply supabase/migrations with the Supabase CLI (records supabase_migrations.schema_migrations)
	@$(SUPABASE) db push --remote="$(DB_URL)" --yes 2>&1 | grep -v '^$$' || true
	@psql "$(DB_URL)" -Xqtc "select 1 from supabase_migrations.schema_migrations limit 1" >/dev/null

worker: migrate $(STAMP)/venv ## run a worker for the receipt jobs (HANDLERS=my_app.jobs WORKER_ARGS="--concurrency 2-16")
	DATABASE_URL="$(DB_URL)" $(PY) -m python_worker run --handlers $(HANDLERS) $(WORKER_ARGS)

queue-process: migrate $(STAMP)/venv ## drain what is due now and exit
	DATABASE_URL="$(DB_URL)" $(PY) -m python_worker process --handlers $(HANDLERS) $(WORKER_ARGS)

queue-status: migrate $(STAMP)/venv ## a table per queue: waiting, running, retrying, dead, failure rate
	DATABASE_URL="$(DB_URL)" $(PY) -m python_worker status

queue-dead-letter: migrate $(STAMP)/venv ## list dead jobs with their errors
	DATABASE_URL="$(DB_URL)" $(PY) -m python_worker dead-letter

demo: deps migrate ## the receipt pipeline end to end on generated sample mail
	DATABASE_URL="$(DB_URL)" $(PY) -m python_worker.receipts.demo

lint: $(STAMP)/venv ## sqlfluff over sql/, migrations and tests; ruff and the import contracts over Python
	$(VENV)/bin/sqlfluff lint sql supabase
	$(VENV)/bin/ruff check python_worker tests scripts
	$(VENV)/bin/lint-imports

check-functions: migrate ## plpgsql_check over every function in queue
	@psql "$(DB_URL)" -Xq -v ON_ERROR_STOP=1 -f scripts/check_functions.sql

test-sql: migrate ## the pgTAP suite through pg_prove
	@psql "$(DB_URL)" -Xqc "create extension if not exists pgtap" >/dev/null
	pg_prove --ext .sql -r -d "$(DB_URL)" supabase/tests/database

test-py: migrate $(STAMP)/venv ## pytest against the real database
	DATABASE_URL="$(DB_URL)" $(VENV)/bin/pytest -q

test: deps lint check-functions test-sql test-py ## everything CI runs

test-mutations: migrate $(STAMP)/venv ## plant each bug of tests/mutations.toml and check its tests catch it
	DATABASE_URL="$(DB_URL)" $(PY) scripts/mutations.py

bench: migrate $(STAMP)/venv ## throughput and latency figures (not part of make test)
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench.py $(BENCH_ARGS)

bench-backlog: migrate $(STAMP)/venv ## claim latency at 0/200k/1M backlogs on stale statistics, drains, hot-table size, history drop
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench_backlog.py $(BENCH_ARGS)

bench-scale: migrate $(STAMP)/venv ## 1, 2, 4, 8 worker processes on one database: jobs/s, Postgres CPU, WAL, waits
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench_scale.py $(BENCH_ARGS)

clean: db-stop ## stop the cluster and delete local state (.local, .venv, node_modules, out)
	rm -rf .local $(VENV) node_modules out

migrate-redo: db $(STAMP)/node ## development only: drop Kyu's schemas and migration history, then migrate again
	@psql "$(DB_URL)" -Xq -c "drop schema if exists queue_public cascade; drop schema if exists receipts cascade; drop schema if exists queue cascade; delete from supabase_migrations.schema_migrations where version >= '20261123000000'" 2>/dev/null || true
	@scripts/render_migrations.sh
	@$(MAKE) --no-print-directory migrate
