# Two commands set everything up on a fresh machine: `make devnet` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint test test-docker fuzz bench devnet clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q --durations=25

# The root docker-compose.yml devnet on a real Docker engine (tests/docker/run.py): as root it
# installs and starts the engine if absent, builds a local base image (kept), the image, runs
# 4 nodes, a partition and a joining validator, then removes everything it started.
# Not part of `make test`; needs root on Linux (it says so and passes otherwise).
test-docker:
	$(PYTHON) -m tests.docker.run

# Coverage-guided fuzzing of every decoder and input boundary (tests/fuzz), FUZZ_RUNS inputs per target.
# Not part of `make test`, which runs a smoke of each target. Findings land in tests/fuzz/crashes/.
FUZZ_RUNS ?= 1000000
FUZZ_ARGS ?=

fuzz: install
	$(BIN)/python -c 'import atheris' 2>/dev/null || $(BIN)/python -m pip install -q 'atheris==3.0.0'
	$(BIN)/python -m tests.fuzz all --runs $(FUZZ_RUNS) $(FUZZ_ARGS)

bench: install
	$(BIN)/python -m bench

devnet: install
	$(BIN)/cstake devnet up --validators 4 --dir .devnet

clean:
	rm -rf $(VENV) .devnet .pytest_cache .mypy_cache .ruff_cache
