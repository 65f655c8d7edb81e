# The two commands of the README:  `make demo`  and  `make test`.
# Both create ./.venv on first use (Python 3.11) and install genkit with its dependencies from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
export WANDB_MODE ?= offline

.PHONY: setup demo test test-fast bench docs clean

setup: $(VENV)/.genkit-installed

$(VENV)/.genkit-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: setup
	$(BIN)/genkit demo --out outputs/demo

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

docs: setup
	$(BIN)/mkdocs build --strict -d site

clean:
	rm -rf outputs multirun .pytest_cache
