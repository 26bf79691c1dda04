#!/bin/bash
# Training arms side by side on one accelerator, from pre-cut patches, under JAX.
#
# Such a machine accepts a bounded set of files (64 MiB) and has JAX but not Keras, so:
#
#   bash benchmarks/training/arms.sh prepare [PHOTOS] [COUNT] [SEED]    # here
#       writes .arms/ (ignored by git): COUNT patches of 128x128 cut from PHOTOS (default ../shared/data/train
#       and 1200, leaving out the 2 validation photos; SEED, default 0, picks them), the wheels the machine
#       lacks, and the start weights (the shipped model and its training state, deflated); and untracks the
#       shipped weights and exports (35 MB, not needed for training) so that they are not sent. Until
#       `arms.sh restore` tracks them again, the index holds their deletion: commit nothing in between.
#
#   [FROM=.arms/start] [MIN=7] [STEPS=N] [UNTIL=N] [LR=2e-4] ARMS="name=options;name=options" \
#       bash benchmarks/training/arms.sh run OUT                # there, with .arms sent along
#       each arm resumes from FROM (model.keras + model.state.json) with a fresh optimizer at batch 32, with its
#       own `vqcodec train` options beside the common ones, for MIN minutes or until step UNTIL (default STEPS),
#       and leaves OUT/name/model.keras (deflated) and OUT/name/logs.tgz. The learning rate follows the
#       trainer's cosine from step 0 to STEPS (default: FROM's step + 20,000) with peak LR, so a resumed arm
#       starts at that cosine's value at FROM's step (17% of LR at step 66,400 of 86,400).
#
# Back here, `vqcodec train PHOTOS -o ARM/model.keras --evaluate-only` fits each returned model's coding tables
# and measures it on the validation photos.
set -euo pipefail
cd "$(git rev-parse --show-toplevel 2>/dev/null || pwd)"
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
  local photos=${1:-../shared/data/train} count=${2:-1200} seed=${3:-0} exclude total
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")" $ARMS_DIR/start
  for path in "$ARMS_DIR/" "${WEIGHTS[@]}"; do grep -qxF "/$path" "$exclude" 2>/dev/null || echo "/$path" >> "$exclude"; done
  python -m vqcodec.train.data cut "$photos" -o $ARMS_DIR/patches.npz --count "$count" --patch-size 128 --holdout 2 --seed "$seed"
  rm -rf $ARMS_DIR/whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d $ARMS_DIR/whl "keras==$(python -c 'import keras; print(keras.__version__)')" namex optree
  deflate vqcodec/weights/default.keras $ARMS_DIR/start/model.keras
  cp benchmarks/training/model.state.json $ARMS_DIR/start/
  git rm -q --cached --ignore-unmatch "${WEIGHTS[@]}"
  total=$(( $(git ls-files -z --cached --others --exclude-standard | xargs -0 cat | wc -c) + $(du -sb $ARMS_DIR | cut -f1) ))
  echo "files to send: $(( total / 1048576 )) MiB (at most 64); the shipped weights are untracked until 'arms.sh restore'"
  (( total < 63 * 1048576 )) || { echo "too large: cut fewer patches (and 'arms.sh restore' if you stop here)" >&2; exit 1; }
}

restore() {
  git reset -q -- "${WEIGHTS[@]}"
  git status --short -- "${WEIGHTS[@]}"
}

run_arm() {  # name options; never stops early: whatever the arm leaves is returned
  set +e
  local name=$1 options=$2 work=/tmp/arms/$1
  rm -rf "$work" && mkdir -p "$work" "$OUT/$name"
  cp "$FROM/model.keras" "$FROM/model.state.json" "$work/"
  # shellcheck disable=SC2086  # the options are words
  python3 -m vqcodec.cli train --patches $ARMS_DIR/patches.npz -o "$work/model.keras" --resume "$work/model.keras" \
    --steps "$STEPS" --until-step "$UNTIL" --minutes "$MIN" --batch-size 32 --accumulate 1 --log-every "${LOG:-500}" \
    --lr "$LR" --seed "${SEED:-0}" $options > "$work/console.txt" 2>&1
  local status=$?
  [[ -f "$work/model.log.csv" ]] && deflate "$work/model.keras" "$OUT/$name/model.keras"  # a trained interval wrote it
  (cd "$work" && tar czf "$OUT/$name/logs.tgz" console.txt model.state.json $(ls model.log.csv 2>/dev/null))
  return $status
}

run() {
  mkdir -p "${1:?run needs the output folder}"
  OUT=$(cd "$1" && pwd)
  FROM=${FROM:-$ARMS_DIR/start} MIN=${MIN:-7} LR=${LR:-2e-4}
  STEPS=${STEPS:-$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['step'] + 20000)" "$FROM/model.state.json")}
  UNTIL=${UNTIL:-$STEPS}
  if compgen -G "$ARMS_DIR/whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $ARMS_DIR/whl/*.whl
  fi
  export PYTHONPATH=/tmp/site:$PWD:${PYTHONPATH:-} KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
  nvidia-smi -L 2>/dev/null || true
  local start arms arm i failed=0
  local -a pids=()
  start=$(date +%s)
  IFS=';' read -ra arms <<< "${ARMS:?ARMS is name=options;name=options}"
  for arm in "${arms[@]}"; do
    run_arm "${arm%%=*}" "${arm#*=}" &
    pids+=($!)
  done
  for i in "${!arms[@]}"; do
    wait "${pids[$i]}" || { echo "arm ${arms[$i]%%=*} failed"; failed=1; }
  done
  echo "all arms done in $(( $(date +%s) - start )) s"
  for arm in "${arms[@]}"; do
    echo "== ${arm%%=*}"
    { tar xzOf "$OUT/${arm%%=*}/logs.tgz" console.txt | grep -v "^I0000\|^WARNING" || true; } | tail -n 4
  done
  return $failed
}

case ${1:-} in
  prepare) shift; prepare "$@" ;;
  restore) restore ;;
  run) shift; run "$@" ;;
  *) echo "usage: arms.sh prepare [PHOTOS] [COUNT] [SEED] | restore | run OUT" >&2; exit 2 ;;
esac
