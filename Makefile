# zto: `make run` starts the service, `make test` runs the whole suite, `make bench` measures it (bench/),
# `make doctor` checks the setup against the real upstreams.
# Each creates .venv and installs what it needs on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench soak doctor clean

run: $(VENV)/.runtime
	exec $(BIN)/gunicorn -c gunicorn.conf.py

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .

# The benchmark of issue 4 (bench/): the proxy under gunicorn against the fake Z.ai called
# directly; prints the table, writes bench/results/latest.json. BENCH_ARGS="--quick --only a,c".
bench: $(VENV)/.runtime
	$(BIN)/python -m bench $(BENCH_ARGS)

# A few minutes of hostile and faulty traffic on loopback (bench/soak.py): outcomes by kind,
# the worker's RSS and fds, the fake's open streams, the big-body figures. SOAK_ARGS="--seconds 30".
soak: $(VENV)/.runtime
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Check the configured setup (environment, .env.local, .env) against the real upstreams,
# one line per step; exits 0 only if some configured upstream answers and REDIS_URL, when set, works
# (README, Troubleshooting).
doctor: $(VENV)/.runtime
	$(BIN)/python -m zto doctor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
