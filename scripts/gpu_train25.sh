#!/usr/bin/env bash
# One lent-GPU training command (issue 25), run by the `device` tool in the repository root:
#   OUT=... TRAIN_STEPS=1800 bash scripts/gpu_train25.sh
# It installs the carried wheels (data/wheels: soundfile, soxr, cffi, pycparser; the machine has no
# internet), continues the bundled weights with configs/gpu.yaml on the carried pack (data/gpu_pack26,
# made by scripts/make_gpu_pack.py, see configs/gpu.yaml) for TRAIN_STEPS optimiser steps (≈ 4 steps/s
# on an H200 in 2026-12; a step count, not a time limit: a SIGTERM at a time limit also killed the loader
# processes and lost the last checkpoint), then exports five candidates (raw weights of the last three checkpoints, EMA
# weights of the last two) as float16 safetensors into OUT with one config.json and the logs.
set -uo pipefail
OUT=${OUT:?OUT}; TRAIN_STEPS=${TRAIN_STEPS:-1800}
python3 -m pip install --no-deps --no-index -q data/wheels/*.whl 2>&1 | tail -3
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import soundfile, torch; print('libsndfile', soundfile.__libsndfile_version__, 'torch', torch.__version__)"
python3 -m a2sb train configs/gpu.yaml --run-dir runs/gpu25 --max-steps "$TRAIN_STEPS" \
  >"$OUT/train.log" 2>&1
echo "train exit $?"; tail -n 4 "$OUT/train.log"
cp runs/gpu25/metrics.jsonl "$OUT/" 2>/dev/null
mapfile -t ckpts < <(ls runs/gpu25/checkpoints/step_*.pt 2>/dev/null | sort | tail -n 3)
export_one() {  # CHECKPOINT NAME [--ema]
  python3 -m a2sb export "$1" -o "runs/gpu25/export-$2" --half --steps 3 --sampler ode --stereo-mix 0.5 \
    --band-level cap "${@:3}" >/dev/null 2>&1 && cp "runs/gpu25/export-$2/model.safetensors" "$OUT/$2.safetensors" \
    && cp "runs/gpu25/export-$2/config.json" "$OUT/config.json" && echo "exported $2 from $1"
}
for c in "${ckpts[@]}"; do export_one "$c" "raw-$(basename "$c" .pt | tr -dc 0-9 | sed 's/^0*//')"; done
for c in "${ckpts[@]: -2}"; do export_one "$c" "ema-$(basename "$c" .pt | tr -dc 0-9 | sed 's/^0*//')" --ema; done
ls -la "$OUT"
