# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what they need (scripts/bootstrap) into .venv first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: all bootstrap demo test test-cluster lint typecheck firmware pytest soak bench bench-sync bench-console bench-evidence clean

all: test

bootstrap:
	@scripts/bootstrap

## demo: central, a broker and two simulated kiosks; prints the URLs, runs until Ctrl-C
## (DEMO_ARGS="--no-wait" runs the built-in village day once and stops; docs/demo.md)
demo: bootstrap
	@scripts/demo $(DEMO_ARGS)

## test: lint, type-check and run every test (under 15 minutes on 2 cores)
test: bootstrap lint typecheck firmware pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/check_imports.py

typecheck:
	$(BIN)/mypy

## firmware: compile-check, type-check and test the Pico scale firmware under MicroPython
firmware:
	@scripts/check-firmware

# Two passes, side by side (scripts/test-passes): most tests on TEST_WORKERS processes
# (whole files per worker, so a file's fixtures stay together; the longest files first,
# by tests/durations.json, which scripts/test-weights rewrites), and the `serial` ones
# in a process of their own: schemathesis folds its per-operation cases into one under
# xdist, fuzzing less. Three workers on two cores: most tests wait on brokers, central
# processes, browsers and sockets (a run keeps about 1.5 cores busy), and the third
# worker fills that wait.
TEST_WORKERS ?= 3
pytest:
	@TEST_WORKERS=$(TEST_WORKERS) VENV=$(VENV) scripts/test-passes $(PYTEST_ARGS)

## soak: the long runs (hundreds of SIGKILLs of a depositing process and of a syncing
## kiosk; the fault soak of broker, central and PostgreSQL failures, docs/soak.md,
## counts in GREENPASS_FAULT_SOAK_*) kept out of `make test`
soak: bootstrap
	$(BIN)/python -m pytest -q -m soak $(PYTEST_ARGS)

## test-cluster: kiosks and central on a three-node RabbitMQ cluster started by the test,
## one node killed mid-sync, the per-device rights on it, `greenpass central --amqp`
## (about 2 min; docs/scale.md)
test-cluster:
	@GREENPASS_CLUSTER=1 scripts/bootstrap
	$(BIN)/python -m pytest -q -m cluster $(PYTEST_ARGS)

## bench: benchmarks against raw baselines measured in the same run
bench: bootstrap
	$(BIN)/python -m bench

## bench-sync: the long sync benchmarks: a 100,000-entry backlog drained to central
## (SQLite, then PostgreSQL) and a thousand kiosks reconnecting at once (PostgreSQL;
## one central worker, then two)
bench-sync: bootstrap
	$(BIN)/python -m bench.sync_drain
	$(BIN)/python -m bench.sync_storm
	$(BIN)/python -m bench.sync_storm --workers 2

## bench-console: the console's Overview and Fleet on a county of 500 kiosks and
## 2,000,000 entries (SQLite), against raw SQL over the same data (about 2.5 min)
bench-console: bootstrap
	$(BIN)/python -m bench.console

## bench-evidence: an evidence pack of 100,000 entries written by central and verified
## offline (goal: under 60 s), against reading and hashing its entries once
bench-evidence: bootstrap
	$(BIN)/python -m bench.evidence_pack

clean:
	rm -rf $(VENV) .typings .mypy_cache .ruff_cache .pytest_cache .hypothesis demo-data build *.egg-info
