#!/usr/bin/env bash
# Multi-process training with torchrun (python -m torch.distributed.run).
#   [NNODES=1] [NODE_RANK=0] [MASTER_ADDR=127.0.0.1] [PORT=29500] \
#   bash tools/dist_train.sh CONFIG NPROC [train.py args...]
# NPROC processes on this machine; on GPUs one per GPU (NCCL), without CUDA
# NPROC CPU processes (gloo), e.g. for testing the distributed path on a
# laptop. Several machines: run it on each with the same NNODES,
# MASTER_ADDR (machine 0's address) and PORT, and NODE_RANK 0..NNODES-1.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "error: missing arguments; usage: bash tools/dist_train.sh CONFIG NPROC [train.py args...]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}"
