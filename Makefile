# Pont — one command to set up and run, one to test. See README.md.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SERVICES := $(notdir $(wildcard services/*))
INSTALLED := $(VENV)/.installed

export PONT_AGENCIES ?= school:6612001,school:6614002,health:cardiff-vale,social_care:cardiff,youth_work:cardiff

.PHONY: install start stop test test-unit test-integration test-cluster demo lint bench bench-events bench-bookings bench-transitions bench-latency bench-web dead-letters replay-dead-letters asyncapi clean

install: $(INSTALLED)

$(INSTALLED): constraints.txt requirements-dev.txt libs/shared/pyproject.toml $(wildcard services/*/pyproject.toml)
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -r requirements-dev.txt -e "libs/shared[testing]" $(foreach s,$(SERVICES),-e services/$(s))
	@touch $@

start: install
	@$(BIN)/python -m pont_shared.operations.stack start

stop:
	@test -x $(BIN)/python && $(BIN)/python -m pont_shared.operations.stack stop || true

test: install
	@if [ -x infra/check.sh ]; then bash infra/check.sh; fi
	$(BIN)/pytest

test-cluster: install
	$(BIN)/pytest tests/faults/test_cluster.py -s

test-unit: install
	$(BIN)/pytest -m "not integration"

demo: install
	@$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check libs services tests scripts

bench: bench-events bench-bookings bench-transitions bench-latency bench-web

bench-events: install
	@$(BIN)/python scripts/bench_events.py

bench-bookings: install
	@$(BIN)/python scripts/bench_bookings.py

bench-transitions: install
	@$(BIN)/python scripts/bench_transitions.py

bench-latency: install
	@$(BIN)/python scripts/bench_latency.py

bench-web: install
	@$(BIN)/python scripts/bench_web.py

dead-letters: install
	@$(BIN)/pont-dead-letters list $(SERVICE)

replay-dead-letters: install
	@$(BIN)/pont-dead-letters replay $(SERVICE) $(if $(QUEUE),--queue $(QUEUE))

asyncapi: install
	@$(BIN)/python -m pont_shared.contract.events > docs/asyncapi.json && echo "docs/asyncapi.json"

clean: stop
	rm -rf $(VENV) data .run
