# The two commands: `make run` (set up and run the pipeline) and `make test`.
# `make run KAFKA_BROKERS=3` runs it on a local 3-node Kafka cluster (deploy/kafka/kafka.sh).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVICES_ENV := .local/services.env

# Every Python package comes from uv.lock. uv itself is pinned with hashes in
# deploy/uv/requirements.txt and installed from PyPI with pip, so a machine
# needs only Python 3.11+ (no download script, no system-wide install).
UV_HOME := .local/uv
UV := $(UV_HOME)/bin/uv
# uv must use this machine's Python, never fetch one of its own.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
# --frozen: install exactly what uv.lock says; fail rather than re-resolve.
SYNC := $(UV) sync --frozen --quiet

.PHONY: run test lint docs bench services stop migrate clean-data lock lock-upgrade \
	venv-run venv-test venv-bench sdk-test-deps lag

$(UV): deploy/uv/requirements.txt
	test -x $(UV_HOME)/bin/python || $(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install -q --require-hashes -r deploy/uv/requirements.txt
	touch $(UV)

# One environment, synced to the set each command needs (uv removes what the
# command does not: `make run` runs without the test and bench tools).
venv-run: $(UV)
	$(SYNC)

venv-test: $(UV)
	$(SYNC) --group dev --group bench

venv-bench: $(UV)
	$(SYNC) --group bench

# The SDK tests (tests/sdk) also run Segment's JavaScript SDKs, installed by `npm ci`
# from tests/sdk/js/package-lock.json, and analytics.js in Debian's headless
# Chromium (installed with apt-get when missing, as deploy/postgres/pg.sh installs
# PostgreSQL). Only `make test` needs them; `make lint` does not.
SDK_JS := tests/sdk/js
CHROMIUM := /usr/bin/chromium

$(SDK_JS)/node_modules/.package-lock.json: $(SDK_JS)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ (tests/sdk)" >&2; exit 1; }
	cd $(SDK_JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || { echo "$(CHROMIUM) missing (tests/sdk): sudo apt-get install -y chromium" >&2; exit 1; }
	export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q chromium >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }

sdk-test-deps: $(SDK_JS)/node_modules/.package-lock.json $(CHROMIUM)

# After editing pyproject.toml's requirements: resolve them into uv.lock again,
# keeping every version the new requirements allow.
lock: $(UV)
	$(UV) lock

# The deliberate update: re-resolve everything to today's newest versions, then
# let the whole suite decide. `git diff uv.lock` shows what moved; commit the
# lock only when `make test` passed.
lock-upgrade: $(UV)
	$(UV) lock --upgrade
	$(MAKE) test

services:
	bash deploy/services.sh up

# The schema, then the topics, made as the settings in services.env say (copies,
# min.insync.replicas, security); INGEST_TOPICS="TOPIC:PARTITIONS ..." names others.
migrate: services
	source $(SERVICES_ENV) && $(BIN)/ingest-migrate && $(BIN)/ingest-admin create-topics $${INGEST_TOPICS:-}

run: venv-run services migrate
	bash deploy/run.sh

# uv.lock must match pyproject.toml: a requirement edited without `make lock` fails here.
lint: venv-test
	$(UV) lock --check --quiet
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# docs/configuration.md is generated from runtime/settings.py: run this after
# changing a setting (tests/runtime/test_settings_doc.py fails until then).
docs: venv-test
	$(BIN)/python -m runtime.settings_doc docs/configuration.md

test: venv-test sdk-test-deps services migrate lint
	source $(SERVICES_ENV) && $(BIN)/pytest -q

# The write path against its ceilings, then the worst bodies against legitimate ones
# of the same size (bench/bounded_work.py; its table is in docs/limits.md), then three
# quiet teams beside a noisy one (bench/noisy.py; docs/benchmark.md, "Noisy neighbour").
bench: venv-bench services migrate
	source $(SERVICES_ENV) && $(BIN)/python -m bench $(BENCH_ARGS)
	source $(SERVICES_ENV) && $(BIN)/python -m bench.bounded_work
	source $(SERVICES_ENV) && $(BIN)/python -m bench.noisy

stop:
	bash deploy/services.sh down

# .local/pg may be a link to where the postgres user could reach (deploy/postgres/pg.sh):
# the cluster it points to goes too.
clean-data: stop
	if [ -L .local/pg ]; then rm -rf "$$(readlink .local/pg)"; fi
	rm -rf .local/kafka/data .local/kafka/node-* .local/kafka/cluster.id .local/pg

# Consumer-group lag as Kafka sees it (committed offset vs end of each partition).
lag: services
	source $(SERVICES_ENV) && $(BIN)/ingest-admin lag
