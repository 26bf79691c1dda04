#!/bin/bash
# Training arms side by side on one accelerator, from pre-cut patches, under JAX.
#
# Such a machine takes a bounded working tree (64 MiB) and has JAX but not Keras, so:
#
#   bash benchmarks/training/arms.sh prepare [PHOTOS] [COUNT]    # here, from the repository root
#       writes .arms/ (ignored by git): COUNT patches of 128x128 cut from PHOTOS (default ../shared/data/train
#       and 1200, leaving out the 2 validation photos), the wheels the machine lacks, and the start weights
#       (the shipped model and its training state, deflated); and untracks the shipped weights and exports
#       (35 MB, not needed for training) so that they stay behind. Afterwards: `bash benchmarks/training/arms.sh restore`.
#
#   [FROM=.arms/start] [MIN=7] [UNTIL=STEP] [LR=2e-4] ARMS="name=options;name=options" \
#       bash benchmarks/training/arms.sh run OUT                # there, carrying .arms
#       each arm resumes from FROM (model.keras + model.state.json) with a fresh optimizer, trains at batch 32
#       for MIN minutes or until step UNTIL (default: 2,000 steps past FROM's), with its own `vqcodec train`
#       options beside the common ones, and leaves OUT/name/model.keras (deflated) and OUT/name/logs.tgz.
#
# Back here, `vqcodec train PHOTOS -o ARM/model.keras --evaluate-only` fits each returned model's coding tables
# and measures it on the validation photos.
set -euo pipefail
ARMS_DIR=.arms
WEIGHTS=(vqcodec/weights/default.keras vqcodec/weights/default.encode.onnx vqcodec/weights/default.decode.onnx)

deflate() {  # src.keras dst.keras: the same zip, compressed (Keras writes it stored)
  python3 - "$1" "$2" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as src, zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED, compresslevel=6) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
PY
}

prepare() {
  local photos=${1:-../shared/data/train} count=${2:-1200}
  grep -qx "/$ARMS_DIR/" .git/info/exclude 2>/dev/null || echo "/$ARMS_DIR/" >> .git/info/exclude
  for w in "${WEIGHTS[@]}"; do grep -qx "/$w" .git/info/exclude || echo "/$w" >> .git/info/exclude; done
  mkdir -p $ARMS_DIR/start
  python -m vqcodec.train.data cut "$photos" -o $ARMS_DIR/patches.npz --count "$count" --patch-size 128 --holdout 2
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d $ARMS_DIR/whl "keras==$(python -c 'import keras; print(keras.__version__)')" namex optree
  deflate vqcodec/weights/default.keras $ARMS_DIR/start/model.keras
  cp benchmarks/training/model.state.json $ARMS_DIR/start/
  git rm -q --cached --ignore-unmatch "${WEIGHTS[@]}"
  local total
  total=$(( $(git ls-files -z --cached --others --exclude-standard | xargs -0 cat | wc -c) + $(du -sb $ARMS_DIR | cut -f1) ))
  echo "the working tree that travels: $(( total / 1048576 )) MiB (at most 64)"
  (( total < 63 * 1048576 )) || { echo "too large: cut fewer patches" >&2; exit 1; }
}

restore() {
  git reset -q -- "${WEIGHTS[@]}"
  git status --short -- "${WEIGHTS[@]}"
}

run_arm() {  # name options
  local name=$1 options=$2 work=/tmp/arms/$1
  mkdir -p "$work" "$OUT/$name"
  cp "$FROM/model.keras" "$FROM/model.state.json" "$work/"
  # shellcheck disable=SC2086  # the options are words
  python3 -m vqcodec.cli train --patches $ARMS_DIR/patches.npz -o "$work/model.keras" --resume "$work/model.keras" \
    --steps "$UNTIL" --until-step "$UNTIL" --minutes "$MIN" --batch-size 32 --accumulate 1 --log-every "${LOG:-500}" \
    --lr "$LR" --seed "${SEED:-0}" $options > "$work/console.txt" 2>&1 || echo "arm $name failed" >> "$work/console.txt"
  [[ -f "$work/model.log.csv" ]] && deflate "$work/model.keras" "$OUT/$name/model.keras"  # written by a trained interval
  (cd "$work" && tar czf "$OUT/$name/logs.tgz" console.txt model.state.json $(ls model.log.csv 2>/dev/null))
}

run() {
  OUT=${1:?run needs the output folder}
  FROM=${FROM:-$ARMS_DIR/start} MIN=${MIN:-7} LR=${LR:-2e-4}
  UNTIL=${UNTIL:-$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['step'] + 2000)" "$FROM/model.state.json")}
  if compgen -G "$ARMS_DIR/whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $ARMS_DIR/whl/*.whl
  fi
  export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-} KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
  nvidia-smi -L 2>/dev/null || true
  local start arms arm
  start=$(date +%s)
  IFS=';' read -ra arms <<< "${ARMS:?ARMS is name=options;name=options}"
  for arm in "${arms[@]}"; do
    run_arm "${arm%%=*}" "${arm#*=}" &
  done
  wait
  echo "all arms done in $(( $(date +%s) - start )) s"
  for arm in "${arms[@]}"; do
    echo "== ${arm%%=*}"
    tar xzOf "$OUT/${arm%%=*}/logs.tgz" console.txt | grep -v "^I0000\|^WARNING" | tail -n 4
  done
}

case ${1:-} in
  prepare) shift; prepare "$@" ;;
  restore) restore ;;
  run) shift; run "$@" ;;
  *) echo "usage: arms.sh prepare [PHOTOS] [COUNT] | restore | run OUT" >&2; exit 2 ;;
esac
