#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU (mmseg's convention):
#   [GPUS=4] [GPUS_PER_NODE=4] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args...]
# srun starts GPUS tasks, GPUS_PER_NODE per node; mmengine reads the rank,
# world size and master address from Slurm's environment (--launcher slurm).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "error: missing arguments; usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py args...]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
# SRUN_ARGS holds several srun options: split on spaces on purpose
# shellcheck disable=SC2086
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="${GPUS:-4}" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="${CPUS_PER_TASK:-5}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$(dirname "$0")/train.py" "$CONFIG" --launcher slurm "${@:4}"
