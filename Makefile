# Thin wrappers over the `mmreason` CLI. `make demo` and `make test` set up on their own.
SHELL := /bin/bash
PY_SYS ?= python3
REQS := requirements/cpu.txt
# One venv per hash of the pinned requirements, kept outside the clone so fresh clones (CI) reuse it;
# the path carries the hash, so the stamp needs no file-time prerequisite.
CACHE ?= $(HOME)/.cache/mmreason
REQ_HASH := $(shell sha256sum $(REQS) | cut -c1-12)
VENV_REAL := $(CACHE)/venv-$(REQ_HASH)
# This clone's own small venv over the shared one, with this clone installed (.venv/bin/mmreason): clones
# sharing VENV_REAL never run each other's code (scripts/clone_venv.py).
VENV := .venv
PY := $(VENV)/bin/python
MM := $(PY) -m mmreason
export MMREASON_OFFLINE ?= 1
# The embedded default's run folder; configs/{sft,grpo}/tiny_*.yaml name it too, and `make sft/grpo` pass it on.
RUNS ?= runs/demo
CONFIG ?=
EMBEDDED_SFT = --model_name_or_path $(RUNS)/base_model --train_files $(RUNS)/data/train.jsonl --output_dir $(RUNS)/sft
EMBEDDED_GRPO = --model_name_or_path $(RUNS)/sft --train_files $(RUNS)/data/train.jsonl --eval_file $(RUNS)/data/test.jsonl \
  --output_dir $(RUNS)/grpo

# NPROC=N and/or ACCELERATE_CONFIG=configs/accelerate/<name>.yaml: run sft/grpo as N processes through
# scripts/launch.sh (DeepSpeed ZeRO-2 by default; the *_cpu.yaml configs without a GPU). Without them: one process.
NPROC ?=
ACCELERATE_CONFIG ?=
RUN_STAGE = $(if $(NPROC)$(ACCELERATE_CONFIG),PYTHON=$(PY) $(if $(NPROC),GPUS_PER_NODE=$(NPROC)) \
  $(if $(ACCELERATE_CONFIG),ACCELERATE_CONFIG=$(ACCELERATE_CONFIG)) scripts/launch.sh,$(MM))
# A stage's output is usable when it holds weights (a ZeRO-3 run without 16-bit save writes config.json only).
HAS_WEIGHTS = [ -f $(1)/model.safetensors ] || [ -f $(1)/model.safetensors.index.json ]

.PHONY: setup venv-path demo nep-demo papers test bench test-gpu-pins data data-build embedded sft grpo grpo-unsupervised eval plot clean

setup: $(VENV_REAL)/.complete
	@$(VENV_REAL)/bin/python scripts/clone_venv.py $(VENV_REAL) $(VENV)
	@echo "venv ready: $(VENV) (this clone, over $(VENV_REAL)); put mmreason on PATH: source $(VENV)/bin/activate"

# Where the shared venv of these pins lives (tests/test_setup.py asks).
venv-path:
	@echo $(VENV_REAL)

$(VENV_REAL)/.complete:
	@echo "creating $(VENV_REAL) (first run: ~3 min, ~6 GB)"; df -h $(CACHE) 2>/dev/null | tail -1 || true
	@mkdir -p $(CACHE) && rm -rf $(VENV_REAL)
	$(PY_SYS) -m venv $(VENV_REAL)
	$(VENV_REAL)/bin/pip install -q --upgrade pip setuptools wheel
	$(VENV_REAL)/bin/pip install -q -r $(REQS)
	touch $@

# One torch thread per process on small CPUs: on 2 shared cores, two torch threads per process ran up to 10x
# slower whenever anything else ran.
demo nep-demo papers test: export OMP_NUM_THREADS ?= 1
demo: setup
	$(MM) demo --out $(RUNS) $(ARGS)

# Each paper's headline claim as a miniature on the embedded default: runs/papers/summary.md + one PNG per claim.
papers: setup
	$(MM) papers --out runs/papers $(ARGS)

# Video next-event prediction on CPU: tiny model -> video SFT on synthetic NEP clips -> video GRPO -> FutureBench-style
# eval (per-hop table, paired tests, blanked-frames control).
nep-demo: setup
	$(MM) nep demo --out $(or $(NEP_RUNS),runs/nep-demo) $(ARGS)

test: setup
	$(PY) -m pytest -q -x --durations=15

# ARGS: bench names (bench_grpo ...) and/or --profile
bench: setup
	$(PY) -m bench.run $(ARGS)

# The CPU suite under requirements/gpu.txt's versions (transformers, trl, peft, accelerate, datasets, ...):
# a second cached venv with that set minus what needs CUDA (vllm, torchaudio); torch/torchvision are the
# CPU set's local builds (2.14.1/0.29.1; gpu.txt pins 2.14.0/0.29.0 for vllm). vLLM tests keep faking the engine.
GPU_REQS := requirements/gpu.txt
GPU_HASH := $(shell cat $(GPU_REQS) $(REQS) | sha256sum | cut -c1-12)
VENV_GPU_REAL := $(CACHE)/venv-gpupins-$(GPU_HASH)
VENV_GPU := .venv-gpupins

$(VENV_GPU_REAL)/.complete:
	@echo "creating $(VENV_GPU_REAL) (first run: a few min, ~6 GB)"
	@mkdir -p $(CACHE) && rm -rf $(VENV_GPU_REAL)
	$(PY_SYS) -m venv $(VENV_GPU_REAL)
	grep -v -E '^(vllm|torch|torchvision|torchaudio)([=<>~ ]|$$)' $(GPU_REQS) > $(VENV_GPU_REAL)/requirements.txt
	grep -E '^(torch|torchvision|pandas)==' $(REQS) >> $(VENV_GPU_REAL)/requirements.txt
	$(VENV_GPU_REAL)/bin/pip install -q --upgrade pip setuptools wheel
	$(VENV_GPU_REAL)/bin/pip install -q -r $(VENV_GPU_REAL)/requirements.txt
	touch $@

test-gpu-pins: export OMP_NUM_THREADS ?= 1
test-gpu-pins: $(VENV_GPU_REAL)/.complete
	@$(VENV_GPU_REAL)/bin/python scripts/clone_venv.py $(VENV_GPU_REAL) $(VENV_GPU)
	$(VENV_GPU)/bin/python -m mmreason env
	$(VENV_GPU)/bin/python -m pytest -q -x --durations=15 $(ARGS)

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
	  --train_files $(RUNS)/data/train.jsonl --output_dir $(RUNS)/grpo_unsupervised $(ARGS)

eval: setup
	$(MM) eval run --model $(or $(MODEL),$(RUNS)/grpo) --benchmark $(or $(BENCH),$(RUNS)/data/test.jsonl) \
	  --output-dir $(or $(OUT),$(RUNS)/eval/$(notdir $(or $(MODEL),grpo))-$(notdir $(basename $(or $(BENCH),test)))) $(ARGS)

plot: setup
	$(MM) plot --run $(or $(RUN),$(RUNS)/grpo)

clean:
	rm -rf runs .pytest_cache

# The fault-injection suite (tests/faults; also part of `make test`) with its table: cases per entry point,
# kills survived, items lost / duplicated (both must be 0), fuzzed texts.
.PHONY: faults
faults: export OMP_NUM_THREADS ?= 1
faults: setup
	$(PY) tests/faults/report.py
