#!/usr/bin/env bash
# Distributed training: bash tools/dist_train.sh CONFIG NGPUS [train.py args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as in mmpretrain;
# PYTHON picks the interpreter (default: python on PATH).
# Without CUDA it runs NGPUS CPU processes with the gloo backend.
# TOOL picks the tool (default train.py; tools/dist_test.sh sets test.py).
set -euo pipefail
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$DIR/${TOOL:-train.py}" \
    "$CONFIG" "${@:3}" \
    --launcher pytorch
