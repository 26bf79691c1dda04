#!/bin/bash
# Equal fine-tunes in parallel on one GPU from the weights $FROM (model.keras + model.state.json).
# ARMS: "name=trainer options;name=trainer options" (each arm's options beside the common ones).
# An arm's options may hold phases split by " + ": each phase resumes from the one before,
# with MIN divided among them (e.g. "alt=--level-weight-power 0.5 --until-step 57400 --steps 57400 + --level-weight-power 0").
UNTIL=${UNTIL:-46400}
MIN=${MIN:-6.3}
FROM=${FROM:-checkpoints/variable_rate}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L 2>/dev/null
run() {  # name "phase options + phase options ..."
  name=$1
  mkdir -p /tmp/$name $OUT/$name
  cp $FROM/model.keras $FROM/model.state.json /tmp/$name/
  phases=()
  rest="$2"
  while [[ "$rest" == *" + "* ]]; do phases+=("${rest%% + *}"); rest="${rest#* + }"; done
  phases+=("$rest")
  minutes=$(python3 -c "print(round($MIN / ${#phases[@]}, 2))")
  for opts in "${phases[@]}"; do
    python3 -m vqcodec.train_variable_rate --patches .device/patches.npz -o /tmp/$name/model.keras \
      --resume /tmp/$name/model.keras --steps $UNTIL --until-step $UNTIL --minutes $minutes \
      --batch-size 32 --log-every ${LOG:-500} --lr ${LR:-6e-4} --seed 0 $opts >> $OUT/$name/console.txt 2>&1
  done
  python3 - /tmp/$name/model.keras $OUT/$name/model.keras <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as src, zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED, compresslevel=6) as dst:
    for info in src.infolist():
        dst.writestr(info.filename, src.read(info.filename))
PY
  cp /tmp/$name/model.state.json /tmp/$name/model.log.csv $OUT/$name/
  (cd $OUT/$name && tar czf logs.tgz console.txt model.state.json model.log.csv && rm console.txt model.state.json model.log.csv)
}
start=$(date +%s)
IFS=';' read -ra arms <<< "$ARMS"
for arm in "${arms[@]}"; do
  run "${arm%%=*}" "${arm#*=}" &
done
wait
echo "all done in $(( $(date +%s) - start )) s"
ls -la $OUT/*
for d in $OUT/*/; do echo "== $d"; tar xzOf $d/logs.tgz console.txt | grep -v "^I0000\|WARNING" | tail -n 4; done
