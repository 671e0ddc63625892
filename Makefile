# The two commands: `make run` (set up and run the pipeline) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVICES_ENV := .local/services.env

.PHONY: run test lint bench services stop migrate clean-data venv lag

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(STAMP)

services:
	bash deploy/services.sh up

migrate: venv services
	source $(SERVICES_ENV) && $(BIN)/ingest-migrate

run: venv services migrate
	bash deploy/run.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv services migrate lint
	source $(SERVICES_ENV) && $(BIN)/pytest -q

bench: venv services migrate
	source $(SERVICES_ENV) && $(BIN)/python -m bench $(BENCH_ARGS)

stop:
	bash deploy/services.sh down

clean-data: stop
	rm -rf .local/kafka/data .local/pg

# Consumer-group lag as Kafka sees it (committed offset vs end of each partition).
lag: services
	source $(SERVICES_ENV) && java -cp '.local/kafka/libs/*' \
	  org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
	  --bootstrap-server "$$KAFKA_BOOTSTRAP_SERVERS" --describe --group "$${CONSUMER_GROUP:-ingest-writers}" 2>/dev/null
