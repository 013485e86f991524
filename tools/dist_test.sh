#!/usr/bin/env bash
# Multi-process testing with torchrun (python -m torch.distributed.run).
#   [NNODES=1] [NODE_RANK=0] [MASTER_ADDR=127.0.0.1] [PORT=29500] \
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
# The processes split the test set; without CUDA they run on the CPU (gloo).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "error: missing arguments; usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$(dirname "$0")/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
