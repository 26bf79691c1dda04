"""A decoder_finetune.py log row as a validation curve, at the rates of the model it started from.

PYTHONPATH=. python checkpoints/variable_rate/probes/log_curve.py START.eval.json OUT.log.csv STEP OUT.stepSTEP.curve.json

The decoder's training leaves every code and bit as they were, so each
level's bpp is START's (its ``--evaluate-only``) and its PSNR the log's;
the result reads like an ``--evaluate-only`` file for ``validation_compare.py``.
"""

import csv
import json
import sys

start, log, step, out = sys.argv[1:]
levels = json.load(open(start))["levels"]
row = next(r for r in csv.DictReader(open(log)) if r["step"] == step)
curve = [{"quality": v["quality"], "bpp": v["bpp"], "psnr": float(row[f"val_psnr_q{v['quality']}"])} for v in levels]
with open(out, "w") as f:
    json.dump({"levels": curve}, f, indent=1)
