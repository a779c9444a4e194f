#!/usr/bin/env bash
# Train the shipped model on the device machine (JAX backend), from synthetic data only.
#   scripts/gpu_train.sh smoke|full [OUT] [extra gpu_train.py args...]
# smoke: 6 cases, 40 steps (checks the pipeline and measures step time);
# full:  96 cases x 6 patches, training for TRAIN_SECONDS (default 330) with a cosine schedule.
# Carried wheels in .whl/ (keras and what the device lacks) are installed to /tmp/site first.
set -euo pipefail
mode=${1:-smoke}
out=${2:-${OUT:-/tmp/gpu_out}}
shift $(( $# > 2 ? 2 : $# ))
PY=${PY:-python3}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 TQDM_MININTERVAL=${TQDM_MININTERVAL:-10}
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-.85}
if [ -d .whl ] && [ -z "${TUMORSEG_NO_WHL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export TUMORSEG_DEVICE="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo cpu)"
echo "device: $TUMORSEG_DEVICE; cpus: $(nproc)"
$PY -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__, keras.backend.backend())"
case $mode in
  smoke)
    $PY scripts/gpu_train.py --out "$out" --cases 6 --valid-cases 2 --per-case 4 --steps 60 \
        --batch-size 8 --bf16 --eval-every 30 "$@" ;;
  full)
    $PY scripts/gpu_train.py --out "$out" --cases 96 --valid-cases 4 --per-case 6 --steps 100000 \
        --max-seconds "${TRAIN_SECONDS:-330}" --batch-size 8 --bf16 --eval-every 500 "$@" ;;
  *) echo "usage: $0 smoke|full [OUT] [args...]" >&2; exit 2 ;;
esac
ls -la "$out"
