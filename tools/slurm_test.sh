#!/usr/bin/env bash
# Evaluation on a Slurm cluster (mmpretrain's form):
#   [GPUS=8] bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
# The launcher of tools/slurm_train.sh (same GPUS, GPUS_PER_NODE,
# CPUS_PER_TASK, SRUN_ARGS and PYTHON variables), running tools/test.py.
TOOL=test.py TOOL_ARGS="$4" exec bash "$(dirname "$0")/slurm_train.sh" "$@"
