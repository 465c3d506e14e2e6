# Thin wrappers over the `mmreason` CLI. `make demo` and `make test` set up on their own.
SHELL := /bin/bash
PY_SYS ?= python3
REQS := requirements/cpu.txt
# One venv per hash of the pinned requirements, kept outside the clone so fresh clones (CI) reuse it;
# the path carries the hash, so the stamp needs no file-time prerequisite.
CACHE ?= $(HOME)/.cache/mmreason
REQ_HASH := $(shell sha256sum $(REQS) | cut -c1-12)
VENV_REAL := $(CACHE)/venv-$(REQ_HASH)
VENV := .venv
PY := $(VENV)/bin/python
MM := $(PY) -m mmreason
export MMREASON_OFFLINE ?= 1
# The embedded default's run folder; configs/{sft,grpo}/tiny_*.yaml name it too, and `make sft/grpo` pass it on.
RUNS ?= runs/demo
CONFIG ?=
EMBEDDED_SFT = --model_name_or_path $(RUNS)/base_model --train_files $(RUNS)/data/train.jsonl --output_dir $(RUNS)/sft
EMBEDDED_GRPO = --model_name_or_path $(RUNS)/sft --train_file $(RUNS)/data/train.jsonl --eval_file $(RUNS)/data/test.jsonl \
  --output_dir $(RUNS)/grpo

# NPROC=N and/or ACCELERATE_CONFIG=configs/accelerate/<name>.yaml: run sft/grpo as N processes through
# scripts/launch.sh (DeepSpeed ZeRO-2 by default; the *_cpu.yaml configs without a GPU). Without them: one process.
NPROC ?=
ACCELERATE_CONFIG ?=
RUN_STAGE = $(if $(NPROC)$(ACCELERATE_CONFIG),PYTHON=$(PY) $(if $(NPROC),GPUS_PER_NODE=$(NPROC)) \
  $(if $(ACCELERATE_CONFIG),ACCELERATE_CONFIG=$(ACCELERATE_CONFIG)) scripts/launch.sh,$(MM))
# A stage's output is usable when it holds weights (a ZeRO-3 run without 16-bit save writes config.json only).
HAS_WEIGHTS = [ -f $(1)/model.safetensors ] || [ -f $(1)/model.safetensors.index.json ]

.PHONY: setup demo test bench data data-build embedded sft grpo grpo-unsupervised eval plot clean

setup: $(VENV_REAL)/.complete
	@ln -sfn $(VENV_REAL) $(VENV)
	@$(PY) -c "import mmreason, os, sys; sys.exit(os.path.dirname(mmreason.__path__[0]) != os.getcwd())" 2>/dev/null \
	  || $(PY) -m pip install -q --no-deps --no-build-isolation -e . >/dev/null
	@echo "venv ready: $(VENV) -> $(VENV_REAL)"

$(VENV_REAL)/.complete:
	@echo "creating $(VENV_REAL) (first run: ~3 min, ~6 GB)"; df -h $(CACHE) 2>/dev/null | tail -1 || true
	@mkdir -p $(CACHE) && rm -rf $(VENV_REAL)
	$(PY_SYS) -m venv $(VENV_REAL)
	$(VENV_REAL)/bin/pip install -q --upgrade pip setuptools wheel
	$(VENV_REAL)/bin/pip install -q -r $(REQS)
	touch $@

# One torch thread per process on small CPUs: two threads thrash when anything else runs (STACK.md).
demo test: export OMP_NUM_THREADS ?= 1
demo: setup
	$(MM) demo --out $(RUNS)

test: setup
	$(PY) -m pytest -q -x --durations=15

bench: setup
	$(PY) -m bench.run

data: setup
	$(MM) data synth --out $(RUNS)/synth --n 3000 --seed 0 $(ARGS)

data-build: setup
	$(MM) data build --recipe data_recipes/$(or $(RECIPE),distilled).yaml --out runs/data/$(or $(RECIPE),distilled) $(ARGS)

# The embedded default (tiny model + synthetic data) that `make sft` trains when no CONFIG is given.
embedded: setup
	$(MM) demo --out $(RUNS) --prepare-only

sft: setup $(if $(CONFIG),,embedded)
	$(RUN_STAGE) sft --config $(or $(CONFIG),configs/sft/tiny_demo.yaml $(EMBEDDED_SFT)) $(ARGS)

grpo: setup
	@[ -n "$(CONFIG)" ] || $(call HAS_WEIGHTS,$(RUNS)/sft) || { echo "no SFT weights in $(RUNS)/sft: run 'make sft' first (or give CONFIG=...)"; exit 2; }
	$(RUN_STAGE) grpo --config $(or $(CONFIG),configs/grpo/tiny_demo.yaml $(EMBEDDED_GRPO)) $(ARGS)

grpo-unsupervised: setup
	@$(call HAS_WEIGHTS,$(RUNS)/sft) || { echo "no SFT weights in $(RUNS)/sft: run 'make sft' first"; exit 2; }
	$(RUN_STAGE) grpo --config configs/grpo/tiny_unsupervised.yaml --model_name_or_path $(RUNS)/sft \
	  --train_file $(RUNS)/data/train.jsonl --output_dir $(RUNS)/grpo_unsupervised $(ARGS)

eval: setup
	$(MM) eval run --model $(or $(MODEL),$(RUNS)/grpo) --benchmark $(or $(BENCH),$(RUNS)/data/test.jsonl) \
	  --output-dir $(or $(OUT),$(RUNS)/eval/$(notdir $(or $(MODEL),grpo))-$(notdir $(basename $(or $(BENCH),test)))) $(ARGS)

plot: setup
	$(MM) plot --run $(or $(RUN),$(RUNS)/grpo)

clean:
	rm -rf runs .pytest_cache
