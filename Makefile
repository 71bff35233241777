# One command for humans and CI alike: what the README says is what .ci/run runs.
SHELL := bash
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: bootstrap demo test lint unit bench fuzz chaos soak clean

bootstrap:
	@scripts/bootstrap

## demo: a whole mall on this machine: central, gateway and simulators (Ctrl-C stops it)
demo: bootstrap
	$(BIN)/mallgate demo $(DEMO_ARGS)

## test: the whole default suite: lint, types, tests (about a minute)
test: bootstrap lint unit

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/mypy bench/sync.py

unit: bootstrap
	$(BIN)/pytest -q $(PYTEST_ARGS)

## bench: every benchmark; QUICK=1 for the short CI run
bench: bootstrap
	@set -e; for script in bench/*.py; do \
		$(BIN)/python $$script $(if $(QUICK),--quick); \
	done

## fuzz: the property tests with many more examples
fuzz: bootstrap
	MALLGATE_FUZZ=1 $(BIN)/pytest -q tests/loyalty/test_properties.py tests/ledger tests/sync/test_state_machine.py tests/kiosk/test_protocol.py tests/ble $(PYTEST_ARGS)

## soak: the long runs (a 100,000-event backlog drained to central)
soak: bootstrap
	MALLGATE_SOAK=1 $(BIN)/pytest -q tests/sync/test_backlog.py $(PYTEST_ARGS)

## chaos: crash tests with many more kill points
chaos: bootstrap
	MALLGATE_CHAOS=1 $(BIN)/pytest -q tests/store tests/ledger tests/sync tests/kiosk -k crash $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
