# The two commands of the README:  `make demo`  and  `make test`.
# Both create ./.venv on first use (Python 3.11; about 4 min and 6 GB, mostly PyTorch's CUDA libraries) and install
# genkit with the tested dependency set: constraints.txt, the exact versions CI ran, inside pyproject's ranges.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints.txt
# torch/torchvision install from local disk on the build machines (their pip config caps torch at these).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
CONSTRAINTS_VENV ?= $(or $(TMPDIR),/tmp)/genkit-constraints-venv
export WANDB_MODE ?= offline

.PHONY: setup demo test test-fast bench docs ci wheel-smoke constraints clean

setup: $(VENV)/.genkit-installed

$(VENV)/.genkit-installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $@

demo: setup
	$(BIN)/genkit demo --out outputs/demo

test: setup
	$(BIN)/python -m pytest -q

# the suite without the `slow` tests (training chains, DDP, notebooks, the demo)
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not benchmark"

bench: setup
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

docs: setup
	$(BIN)/mkdocs build --strict -d site

# what CI runs (.ci/run): the wheel smoke test, then `make test`
ci:
	.ci/run

# build the wheel, install it into a fresh venv with $(CONSTRAINTS), run genkit from an empty folder
wheel-smoke:
	PYTHON=$(PYTHON) .ci/wheel-smoke

# Regenerate the tested dependency set after changing dependencies in pyproject.toml: a fresh venv gets the torch
# pins and genkit[test] at the newest versions pyproject allows, and `pip freeze` of it (minus genkit itself)
# becomes $(CONSTRAINTS). 2-7 min and 6 GB of temporary disk. Run `make ci` afterwards: CI tests this set.
constraints:
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	$(CONSTRAINTS_VENV)/bin/python -m pip install --quiet $(TORCH_PINS)
	$(CONSTRAINTS_VENV)/bin/python -m pip install --quiet ".[test]"
	$(CONSTRAINTS_VENV)/bin/python -m pip check
	{ echo "# The tested dependency set: exactly what CI installs and runs (Python 3.11, Linux x86_64)."; \
	  echo "# pip freeze of a fresh venv with $(TORCH_PINS) and genkit[test], genkit itself left out."; \
	  echo "# Used as: pip install -c $(CONSTRAINTS) ...  (make setup, .ci/wheel-smoke). Regenerate: make constraints"; \
	  $(CONSTRAINTS_VENV)/bin/python -m pip freeze --exclude genkit; } > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	rm -rf $(CONSTRAINTS_VENV) build genkit.egg-info

clean:
	rm -rf outputs multirun .pytest_cache build dist
