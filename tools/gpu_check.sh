#!/usr/bin/env bash
# GPU check, one GPU, about 6 minutes on an H100 (sized for < 8):
#
#   bash tools/gpu_check.sh [OUT_DIR]        # default work_dirs/gpu_check
#
# 1. the device, torch, CUDA and cuDNN versions;
# 2. tools/analysis/benchmark.py on CUDA with AMP (float16 AmpOptimWrapper,
#    both trainers), batch 32 and then 64: stock mmpretrain against configs/
#    rock_b4.py, whose model runs the frozen backbone channels_last and whose
#    env_cfg sets cudnn_benchmark=True; 3 epochs on the bundled images listed
#    16 times (about 3000 training crops an epoch, JPEG decode included,
#    WORKERS data-loader workers, default 12), then predict on all of them.
#    Its summary gives train and predict images/s of both;
# 3. one bash tools/dist_train.sh run with 1 GPU (2 epochs, AMP), which must
#    write history.csv, last.pth and best.pth.
#
# Any failing step stops the script with "[gpu_check] FAILED: ..." and a
# non-zero exit; the last line on success is "[gpu_check] all passed".
# PYTHON picks the interpreter; PORT the dist_train.sh port (default: free);
# WORKERS the benchmark's data-loader workers.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${1:-work_dirs/gpu_check}
# data-loader workers of both trainers: one JPEG decode + crop thread gives
# ~270 images/s (docs/gpu_check.md), the config's 4 would cap at ~1000/s
WORKERS=${WORKERS:-$(( $(nproc) > 13 ? 12 : $(nproc) - 1 ))}
fail() { echo "[gpu_check] FAILED: $*" >&2; exit 1; }
trap 'fail "line $LINENO: $BASH_COMMAND (exit $?)"' ERR
mkdir -p "$OUT"
start=$SECONDS

echo "[gpu_check] 1/3 device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" - <<'EOF'
import torch
assert torch.cuda.is_available(), 'torch sees no CUDA device'
print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN '
      f'{torch.backends.cudnn.version()}, {torch.cuda.get_device_name(0)}')
EOF

for bs in 32 64; do
    echo "[gpu_check] 2/3 benchmark, AMP, batch $bs"
    "$PYTHON" tools/analysis/benchmark.py --device cuda --amp \
        --batch-size "$bs" --num-workers "$WORKERS" --repeats 1 --epochs 3 \
        --data-repeat 16 --timeout 300 \
        --work-dir "$OUT/bench_b$bs" --out "$OUT/bench_b$bs.json" \
        | tee "$OUT/bench_b$bs.txt"
    grep -q '^epoch speedup: ' "$OUT/bench_b$bs.txt" \
        || fail "benchmark batch $bs printed no speedup line"
done

echo "[gpu_check] 3/3 dist_train.sh, 1 GPU"
PORT=${PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')}
PORT=$PORT bash tools/dist_train.sh configs/rock_b4.py 1 \
    --data-root demo/rock_thin_sections --split-validation --fold 0 --amp \
    --seed 0 --work-dir "$OUT/dist_train" \
    --cfg-options train_cfg.max_epochs=2 model.backbone.init_cfg=None \
    2>&1 | tail -n 5
for f in history.csv last.pth best.pth; do
    [ -s "$OUT/dist_train/$f" ] || fail "dist_train.sh wrote no $f"
done
rows=$(($(wc -l < "$OUT/dist_train/history.csv") - 1))
[ "$rows" -eq 2 ] || fail "history.csv has $rows epoch rows, expected 2"

echo "[gpu_check] summary"
for bs in 32 64; do
    echo "batch $bs:"
    grep -E '^(training images/s|epoch speedup|predict speedup|pair|1 )' \
        "$OUT/bench_b$bs.txt"
done
echo "[gpu_check] all passed in $((SECONDS - start)) s; outputs in $OUT"
