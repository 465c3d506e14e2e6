#!/usr/bin/env bash
# Launch an mmreason stage on several nodes with accelerate + DeepSpeed.
# Run the same command on every node, with NODE_RANK set per node:
#
#   MASTER_ADDR=10.0.0.1 NODE_RANK=0 NUM_NODES=2 GPUS_PER_NODE=8 \
#     scripts/launch_multinode.sh sft --config configs/sft/qwen2_5_vl_7b.yaml
#   ... NODE_RANK=1 on the second node.
#
# STAGE is `sft` or `grpo`; everything after it goes to the stage (config + overrides).
# ZERO selects configs/accelerate/deepspeed_zero{2,3}.yaml (default 2, as in the paper's SFT).
set -euo pipefail
STAGE=${1:?usage: launch_multinode.sh sft|grpo --config FILE [overrides...]}; shift
: "${MASTER_ADDR:?set MASTER_ADDR to the address of the rank-0 node}"
MASTER_PORT=${MASTER_PORT:-29500}
NODE_RANK=${NODE_RANK:?set NODE_RANK (0..NUM_NODES-1)}
NUM_NODES=${NUM_NODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-$(python -c "import torch; print(max(1, torch.cuda.device_count()))")}
ZERO=${ZERO:-2}
HERE=$(cd "$(dirname "$0")/.." && pwd)

exec accelerate launch \
  --config_file "$HERE/configs/accelerate/deepspeed_zero${ZERO}.yaml" \
  --num_machines "$NUM_NODES" \
  --num_processes $((NUM_NODES * GPUS_PER_NODE)) \
  --machine_rank "$NODE_RANK" \
  --main_process_ip "$MASTER_ADDR" \
  --main_process_port "$MASTER_PORT" \
  -m mmreason "$STAGE" "$@"
