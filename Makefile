# Kyu: every entry point. `make help` lists them.
# DATABASE_URL points everything at another database (a Supabase project) instead of the local cluster.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
SUPABASE := node_modules/.bin/supabase
STAMP := .local/stamps
DB_URL = $(shell scripts/db.sh url)
# PgBouncer in transaction mode in front of the local cluster (empty with DATABASE_URL set)
POOLER_URL = $(shell scripts/db.sh pooler-url)
SYSTEM_PACKAGES := postgresql-15 postgresql-15-cron postgresql-15-pgtap pgtap postgresql-15-plpgsql-check \
	pgbouncer postgresql-contrib tesseract-ocr tesseract-ocr-jpn poppler-utils fonts-ipafont-gothic \
	libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
	chromium chromium-driver
WORKER_ARGS ?=
# the handler modules make worker / queue-process load (the engine has no default set)
HANDLERS ?= python_worker.receipts.jobs

.PHONY: help deps db db-stop db-reset migrate render worker queue-status queue-process \
	queue-dead-letter demo demo-large dashboard dashboard-screenshots receipts-ingest receipts-import \
	receipts-review receipts-confirm receipts-reject receipts-correct receipts-report test test-sql \
	test-py test-mutations lint check-functions bench bench-backlog bench-bounds bench-scale bench-fair clean

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
	$(PY) -m pip install -q -e '.[dev,receipts,dashboard]'
	@touch $@

$(STAMP)/node: package.json
	@mkdir -p $(STAMP)
	npm install --no-audit --no-fund --silent
	@touch $@

deps: $(STAMP)/system $(STAMP)/venv $(STAMP)/node ## install system packages, the Python venv and the Supabase CLI

db: $(STAMP)/system ## start the local PostgreSQL 15 + pg_cron cluster on 127.0.0.1:54322 and PgBouncer on :55322 (idempotent)
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

# The console; the demo runs first when the local database holds no job at all (never against
# a DATABASE_URL of your own). DASHBOARD_ARGS="--read-only", "--port 8500", "--hide-payloads".
DASHBOARD_ARGS ?=
dashboard: deps migrate ## the operator's console on http://127.0.0.1:8400 (token printed; KYU_DASHBOARD_TOKEN to choose it)
	@if [ -z "$$DATABASE_URL" ] && [ "$$(psql "$(DB_URL)" -XqtAc 'select count(*) from queue.all_jobs')" = 0 ]; then \
		echo "dashboard: the database holds no job yet; running make demo first"; \
		$(MAKE) --no-print-directory demo; fi
	DATABASE_URL="$(DB_URL)" $(PY) -m python_worker dashboard $(DASHBOARD_ARGS)

dashboard-screenshots: deps migrate ## every console page in Chromium: out/screenshots/*.png, and docs/console.png for the README
	DATABASE_URL="$(DB_URL)" $(PY) tests/dashboard/screenshots.py

# the receipts CLI on your own data (python -m python_worker.receipts COMMAND; see README)
RECEIPTS = DATABASE_URL="$(DB_URL)" $(PY) -m python_worker.receipts

receipts-ingest: migrate $(STAMP)/venv ## enqueue your mail: MAIL=folder-of-eml|file.mbox, or IMAP=1 [FOLDER=INBOX SINCE=2026-04-01]; ARGS=--process runs it
	$(RECEIPTS) ingest $(if $(IMAP),--imap --folder "$(or $(FOLDER),INBOX)" $(if $(SINCE),--since $(SINCE)),"$(MAIL)") $(ARGS)

receipts-import: migrate $(STAMP)/venv ## load a bank/card CSV: CSV=file PROFILE=generic|bank-jp|card-jp|profile.json [ACCOUNT=name] [ARGS=column flags]
	$(RECEIPTS) import-transactions "$(CSV)" --profile "$(or $(PROFILE),generic)" $(if $(ACCOUNT),--account "$(ACCOUNT)") $(ARGS)

receipts-review: migrate $(STAMP)/venv ## list receipts and suggested matches that need a decision
	$(RECEIPTS) review

receipts-confirm: migrate $(STAMP)/venv ## confirm a suggested match: MATCH=id (its bank text becomes a vendor alias)
	$(RECEIPTS) confirm $(MATCH)

receipts-reject: migrate $(STAMP)/venv ## reject a match: MATCH=id (never proposed again)
	$(RECEIPTS) reject $(MATCH)

receipts-correct: migrate $(STAMP)/venv ## correct a receipt: RECEIPT=id ARGS='--vendor X --date 2026-04-03 --total 1100'
	$(RECEIPTS) correct $(RECEIPT) $(ARGS)

receipts-report: migrate $(STAMP)/venv ## a month's report (CSV, HTML, PDF): MONTH=2026-04
	$(RECEIPTS) report $(MONTH)

demo-large: deps migrate ## the pipeline on 200 generated mails (N=200 SEED=7) as a new user: accuracy by field and kind, matches
	DATABASE_URL="$(DB_URL)" $(PY) -m python_worker.receipts.demo --large $(or $(N),200) --seed $(or $(SEED),7) --fresh

lint: $(STAMP)/venv ## sqlfluff over sql/, migrations and tests; ruff and the import contracts over Python
	$(VENV)/bin/sqlfluff lint sql supabase
	$(VENV)/bin/ruff check python_worker tests scripts examples
	$(VENV)/bin/lint-imports

check-functions: migrate ## plpgsql_check over every function in queue
	@psql "$(DB_URL)" -Xq -v ON_ERROR_STOP=1 -f scripts/check_functions.sql

test-sql: migrate ## the pgTAP suite through pg_prove
	@psql "$(DB_URL)" -Xqc "create extension if not exists pgtap" >/dev/null
	pg_prove --ext .sql -r -d "$(DB_URL)" supabase/tests/database

test-py: migrate $(STAMP)/venv ## pytest against the real database (the worker's core tests also through PgBouncer)
	DATABASE_URL="$(DB_URL)" KYU_POOLER_URL="$(POOLER_URL)" $(VENV)/bin/pytest -q

test: deps lint check-functions test-sql test-py ## everything CI runs

test-mutations: migrate $(STAMP)/venv ## plant each bug of tests/mutations.toml and check its tests catch it
	DATABASE_URL="$(DB_URL)" $(PY) scripts/mutations.py

bench: migrate $(STAMP)/venv ## throughput and latency figures, the console's jobs page on 1M rows, fair claiming (not part of make test)
	DATABASE_URL="$(DB_URL)" KYU_POOLER_URL="$(POOLER_URL)" $(PY) scripts/bench.py $(BENCH_ARGS)
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench_console.py
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench_fair.py

bench-fair: migrate $(STAMP)/venv ## fair claiming alone: B's one job against A's 100k flood, 20 trials; fair vs plain throughput
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench_fair.py $(BENCH_FAIR_ARGS)

bench-backlog: migrate $(STAMP)/venv ## claim latency at 0/200k/1M backlogs on stale statistics, drains, hot-table size, history drop
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench_backlog.py $(BENCH_ARGS)

bench-bounds: migrate $(STAMP)/venv ## the storage ceiling: bare claim/complete/insert on Kyu's tables and a slimmer shape, beside Kyu's functions and the floors
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench_bounds.py $(BENCH_ARGS)

bench-scale: migrate $(STAMP)/venv ## 1, 2, 4, 8 worker processes on one database: jobs/s, Postgres CPU, WAL, waits
	DATABASE_URL="$(DB_URL)" $(PY) scripts/bench_scale.py $(BENCH_ARGS)

clean: db-stop ## stop the cluster and delete local state (.local, .venv, node_modules, out)
	rm -rf .local $(VENV) node_modules out

migrate-redo: db $(STAMP)/node ## development only: drop Kyu's schemas and migration history, then migrate again
	@psql "$(DB_URL)" -Xq -c "drop schema if exists queue_public cascade; drop schema if exists receipts cascade; drop schema if exists queue cascade; delete from supabase_migrations.schema_migrations where version >= '20261123000000'" 2>/dev/null || true
	@scripts/render_migrations.sh
	@$(MAKE) --no-print-directory migrate
