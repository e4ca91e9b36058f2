#!/usr/bin/env bash
# How the bundled model's candidates were trained on one lent GPU (see MODEL_CARD.md).
#   scripts/train_bundled_gpu.sh launch            start one background training run per candidate preset
#   scripts/train_bundled_gpu.sh status            last log lines of each run
#   scripts/train_bundled_gpu.sh export OUTDIR     EMA weights of each run as a float16 model folder
# Runs live in runs/gpu-<preset>; `launch` resumes them if they exist.
set -uo pipefail
PRESETS=${PRESETS:-"cpu-small cpu-base cpu-fullres"}
WORKERS=${WORKERS:-5}
case "${1:-}" in
  launch)
    for p in $PRESETS; do
      run=runs/gpu-$p; mkdir -p "$run"
      resume=""; [ -f "$run/checkpoints/last.pt" ] && resume="--resume"
      setsid nohup python3 -m a2sb.train configs/bundled.yaml --run-dir "$run" $resume \
        --set model.preset="$p" --set data.workers="$WORKERS" >>"$run/log.txt" 2>&1 </dev/null &
      echo "started $p (pid $!)"
    done ;;
  status)
    for p in $PRESETS; do echo "== $p"; tail -n 3 "runs/gpu-$p/log.txt"; done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null ;;
  export)
    out=${2:?OUTDIR}
    for p in $PRESETS; do
      python3 -m a2sb export "runs/gpu-$p" -o "$out/$p" --ema --half 2>&1 | tail -n 1
      # files larger than 15 MiB travel in parts (join with: cat model.safetensors.part-* > model.safetensors)
      f="$out/$p/model.safetensors"
      if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 15728640 ]; then split -b 15M "$f" "$f.part-" && rm "$f"; fi
    done ;;
  *) echo "usage: $0 launch|status|export OUTDIR"; exit 2 ;;
esac
