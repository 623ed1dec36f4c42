#!/usr/bin/env bash
# Distributed evaluation: bash tools/dist_test.sh CONFIG CHECKPOINT NGPUS [test.py args]
# The launcher of tools/dist_train.sh (same NNODES, NODE_RANK, MASTER_ADDR,
# PORT and PYTHON variables; CPU processes use gloo), running tools/test.py.
set -euo pipefail
TOOL=test.py exec bash "$(dirname "$0")/dist_train.sh" "$1" "$3" "$2" "${@:4}"
