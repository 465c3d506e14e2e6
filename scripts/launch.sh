#!/usr/bin/env bash
# Launch an mmreason training stage on one node or several, through accelerate (DDP or DeepSpeed), under the
# heartbeat watchdog (python -m mmreason.distributed watch).
#
#   scripts/launch.sh [ACCELERATE FLAGS... --] STAGE [STAGE ARGS...]
#
#   # one node, every GPU, ZeRO-2 (the default config)
#   scripts/launch.sh sft --config configs/sft/qwen2_5_vl_7b.yaml
#   # two nodes: the same command on each, NODE_RANK=0 on the node whose address is MASTER_ADDR, 1 on the other
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 scripts/launch.sh grpo --config configs/grpo/qwen2_5_vl_7b.yaml
#   # extra accelerate flags before `--`
#   GPUS_PER_NODE=4 scripts/launch.sh --gpu_ids 0,1,2,3 -- sft --config ...
#
# Environment (all optional except MASTER_ADDR with NNODES > 1):
#   ACCELERATE_CONFIG  configs/accelerate/*.yaml (default deepspeed_zero2.yaml; deepspeed_zero2_cpu.yaml without GPU)
#   NNODES, NODE_RANK  number of nodes (1) and this node's index (0)
#   MASTER_ADDR, MASTER_PORT  rank-0 node address (127.0.0.1 on one node) and a free port on it (29500)
#   GPUS_PER_NODE      processes per node (the node's GPU count; 2 without GPU)
#   USE_CPU            1: train on CPU with gloo (default: 1 when nvidia-smi lists no GPU)
#   HEARTBEAT_TIMEOUT  seconds a rank may stop beating (frozen, kill -STOP) before the job is ended (120)
#   MMREASON_STOP_GRACE  seconds a job that got SIGTERM (a preemption) has to finish its step and save a checkpoint
#                      before SIGKILL (300; torchrun's TORCH_ELASTIC_SHUTDOWN_TIMEOUT defaults to it)
#   WATCHDOG           0 to launch without the watchdog
#   PYTHON             the interpreter with mmreason installed (python)
# The stage's ddp_timeout (seconds, default 1800) bounds how long the other ranks wait in a collective for a
# dead or frozen peer on another node; the watchdog ends a frozen rank's own node within HEARTBEAT_TIMEOUT + ~10 s.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python}

ACC_FLAGS=()
if [[ "${1:-}" == -* ]]; then
  while [[ $# -gt 0 && "$1" != "--" ]]; do ACC_FLAGS+=("$1"); shift; done
  [[ "${1:-}" == "--" ]] || { echo "launch.sh: accelerate flags must end with -- before the stage" >&2; exit 2; }
  shift
fi
STAGE=${1:?usage: scripts/launch.sh [accelerate flags... --] sft|grpo [stage args...]}
shift

if [[ -z "${USE_CPU:-}" ]]; then
  USE_CPU=1
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then USE_CPU=0; fi
fi
if [[ "$USE_CPU" == 1 ]]; then
  DEFAULT_CONFIG=deepspeed_zero2_cpu.yaml DEFAULT_GPUS=2
else
  DEFAULT_CONFIG=deepspeed_zero2.yaml DEFAULT_GPUS=$(nvidia-smi -L | grep -c '^GPU')
fi
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-$HERE/configs/accelerate/$DEFAULT_CONFIG}
[[ -f "$ACCELERATE_CONFIG" ]] || { echo "launch.sh: ACCELERATE_CONFIG=$ACCELERATE_CONFIG not found" >&2; exit 2; }
CPU_ARGS=()
if [[ "$USE_CPU" == 1 ]]; then
  # Without a GPU the stage must be told, differently per engine (else it trains one process per launch, or
  # without gradient sync: mmreason/distributed.py's guard stops both): DeepSpeed takes gloo as its backend, and
  # use_cpu would switch DeepSpeed off (accelerate then runs plain DDP); DDP takes use_cpu.
  if grep -q '^distributed_type: *DEEPSPEED' "$ACCELERATE_CONFIG"; then
    CPU_ARGS=(--ddp_backend gloo)
  else
    export ACCELERATE_USE_CPU=true
  fi
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
GPUS_PER_NODE=${GPUS_PER_NODE:-$DEFAULT_GPUS}
MASTER_PORT=${MASTER_PORT:-29500}
if [[ "$NNODES" -gt 1 ]]; then
  : "${MASTER_ADDR:?set MASTER_ADDR to the address of the NODE_RANK=0 node}"
else
  MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
fi
[[ "$NODE_RANK" -lt "$NNODES" ]] || { echo "launch.sh: NODE_RANK=$NODE_RANK but NNODES=$NNODES" >&2; exit 2; }

# DeepSpeed JIT-compiles a small op on first use (CPU: ~2 min); keep the build where the next run finds it
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$HOME/.cache/mmreason/torch_extensions}
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}"
# on SIGTERM the ranks finish their step and save (mmreason/preemption.py): torchrun must not SIGKILL them after 30 s
export MMREASON_STOP_GRACE=${MMREASON_STOP_GRACE:-300}
export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${TORCH_ELASTIC_SHUTDOWN_TIMEOUT:-$MMREASON_STOP_GRACE}

CMD=("$PYTHON" -m accelerate.commands.launch
  --config_file "$ACCELERATE_CONFIG"
  --num_machines "$NNODES"
  --num_processes $((NNODES * GPUS_PER_NODE))
  --machine_rank "$NODE_RANK"
  --main_process_ip "$MASTER_ADDR"
  --main_process_port "$MASTER_PORT"
  ${ACC_FLAGS[@]+"${ACC_FLAGS[@]}"}
  -m mmreason "$STAGE" ${CPU_ARGS[@]+"${CPU_ARGS[@]}"} "$@")
echo "launch.sh: node $NODE_RANK/$NNODES, $GPUS_PER_NODE process(es) per node, $(basename "$ACCELERATE_CONFIG"), cpu=$USE_CPU" >&2
if [[ "${WATCHDOG:-1}" == 0 ]]; then
  exec "${CMD[@]}"
fi
exec "$PYTHON" -m mmreason.distributed watch --timeout "${HEARTBEAT_TIMEOUT:-120}" -- "${CMD[@]}"
