"""Speed and memory benchmark: ``python -m benchmarks.speed --data DIR [--model PATH] [--limit N]``.

In-process: encode and decode time per image and megapixels per second for every vqcodec
quality level, split into network, quantisation and entropy coding (vqcodec's ``timings``),
and, in the same run, Pillow's JPEG, WebP and AVIF at the bpp vqcodec reached on the same
image (quality found by bisection), so the ratios hold on a noisy machine.

Whole-process: wall time and peak resident memory of ``vqcodec compress`` and
``vqcodec decompress`` on one image (start-up included), of a bare ``import keras`` for the
start-up floor, and of compress/decompress on a 24-megapixel image made by resizing the
first input image.  Prints a table; writes speed.json and speed.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from vqcodec.comparison import codecs as pillow_codecs
from . import ours
from .common import Progress, bpp, list_images, load_rgb, notice, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
PILLOW_KEYS = ("jpeg", "webp", "avif")
DEFAULT_TARGETS = (0.25, 0.5, 1.0, 2.0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of images (e.g. ../shared/data/kodak)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: benchmarks/results)")
    p.add_argument("--model", default=None, help="vqcodec model file (default: the shipped model)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (sorted by name)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement; the median is kept")
    p.add_argument("--codecs", default=",".join((ours.KEY,) + PILLOW_KEYS),
                   help="comma-separated subset of vqcodec,jpeg,webp,avif (default: all)")
    p.add_argument("--bpp", default=",".join(str(b) for b in DEFAULT_TARGETS),
                   help="target bpps for the Pillow codecs when vqcodec is not measured (default: 0.25,0.5,1,2)")
    p.add_argument("--cli-quality", type=int, default=None,
                   help="quality level for the whole-process runs (default: the middle level)")
    p.add_argument("--large-mp", type=float, default=24.0,
                   help="megapixels of the large test image for the memory run (0 disables; default 24)")
    p.add_argument("--no-cli", action="store_true", help="skip the whole-process measurements")
    return p.parse_args(argv)


# ---------------------------------------------------------------- in-process timing

def _median_runs(fn, repeat: int):
    """Run ``fn() -> (result, seconds, split)`` ``repeat`` times; median seconds and split."""
    runs = [fn() for _ in range(max(1, repeat))]
    secs = statistics.median(r[1] for r in runs)
    split = {}
    for k in {k for r in runs for k in r[2]}:
        split[k] = statistics.median(r[2].get(k, 0.0) for r in runs)
    return runs[-1][0], secs, split


def time_ours(codec, image: Image.Image, quality: int, repeat: int) -> dict:
    def enc():
        t = {}
        t0 = time.perf_counter()
        data = codec.encode(image, quality, timings=t)
        return data, time.perf_counter() - t0, dict(t)

    data, enc_s, enc_split = _median_runs(enc, repeat)

    def dec():
        t = {}
        t0 = time.perf_counter()
        codec.decode(data, timings=t)
        return None, time.perf_counter() - t0, dict(t)

    _, dec_s, dec_split = _median_runs(dec, repeat)
    return {"bytes": len(data), "encode_s": enc_s, "decode_s": dec_s,
            "encode_split": enc_split, "decode_split": dec_split}


def match_quality(codec, image: Image.Image, target_bpp: float, cache: dict) -> tuple[int, float]:
    """Integer quality of a Pillow codec whose bpp on ``image`` is closest to ``target_bpp``.

    Bisection on quality (bpp grows with quality), sizes cached per (codec, image)."""
    w, h = image.size

    def rate(q):
        if q not in cache:
            cache[q] = bpp(len(codec.encode(image, q)), w, h)
        return cache[q]

    lo, hi = codec.search_range
    if rate(lo) >= target_bpp:
        return lo, rate(lo)
    if rate(hi) <= target_bpp:
        return hi, rate(hi)
    while hi - lo > 1:  # invariant: rate(lo) < target <= rate(hi)
        mid = (lo + hi) // 2
        if rate(mid) < target_bpp:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda q: abs(math.log(rate(q) / target_bpp)))
    return best, rate(best)


def time_pillow(codec, image: Image.Image, quality, repeat: int) -> dict:
    def enc():
        t0 = time.perf_counter()
        data = codec.encode(image, quality)
        return data, time.perf_counter() - t0, {}

    data, enc_s, _ = _median_runs(enc, repeat)

    def dec():
        t0 = time.perf_counter()
        codec.decode(data)
        return None, time.perf_counter() - t0, {}

    _, dec_s, _ = _median_runs(dec, repeat)
    return {"bytes": len(data), "encode_s": enc_s, "decode_s": dec_s}


def _summarise(records: list[dict]) -> dict:
    """Mean per-image seconds, total-pixel throughput, mean bpp over a list of image records."""
    n = len(records)
    mp = sum(r["pixels"] for r in records) / 1e6
    enc = sum(r["encode_s"] for r in records)
    dec = sum(r["decode_s"] for r in records)
    out = {"images": n, "bpp": sum(r["bpp"] for r in records) / n,
           "encode_s": enc / n, "decode_s": dec / n,
           "encode_mp_per_s": mp / enc if enc > 0 else float("inf"),
           "decode_mp_per_s": mp / dec if dec > 0 else float("inf")}
    for side in ("encode", "decode"):
        keys = sorted({k for r in records for k in r.get(f"{side}_split", {})})
        if keys:
            split = {k: sum(r[f"{side}_split"].get(k, 0.0) for r in records) / n for k in keys}
            split["other"] = out[f"{side}_s"] - sum(split.values())
            out[f"{side}_split_s"] = split
    if "quality" in records[0]:
        out["quality"] = [r["quality"] for r in records]
    out["per_image"] = [{k: r[k] for k in ("image", "quality", "bpp", "encode_s", "decode_s", "encode_split",
                                           "decode_split", "target_bpp") if k in r} for r in records]
    return out


# ---------------------------------------------------------------- whole-process runs

# Runs the command from a small fresh interpreter: on Linux a child's ru_maxrss starts from
# the RSS of the process it was forked from (the old address space counts until exec), so
# forking straight from this process, with TensorFlow loaded, would report our own size.
_MEASURE = (
    "import json, os, subprocess, sys, time\n"
    "t0 = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)\n"
    "_, status, ru = os.wait4(p.pid, 0)\n"
    "wall = time.perf_counter() - t0\n"
    "print(json.dumps({'wall_s': wall, 'returncode': os.waitstatus_to_exitcode(status),\n"
    "                  'maxrss': ru.ru_maxrss, 'user_s': ru.ru_utime, 'sys_s': ru.ru_stime}))\n"
)


def run_measured(argv: list[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Run a command; its wall seconds and its own peak RSS (os.wait4's rusage of that child).

    The command is started by a small helper interpreter, which adds ~10 MiB as a floor to
    peak RSS (see _MEASURE) and nothing to the wall time (measured inside the helper).
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-c", _MEASURE, *argv], env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    try:
        info = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"command": " ".join(shlex.quote(a) for a in argv), "returncode": proc.returncode or -1,
                "wall_s": float("nan"), "peak_rss_mib": float("nan"), "stderr_tail": tail}
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss_mib = info["maxrss"] / (1024 * 1024) if sys.platform == "darwin" else info["maxrss"] / 1024
    out = {"command": " ".join(shlex.quote(a) for a in argv), "returncode": info["returncode"],
           "wall_s": info["wall_s"], "peak_rss_mib": rss_mib, "user_s": info["user_s"], "sys_s": info["sys_s"]}
    if info["returncode"] != 0:
        out["stderr_tail"] = tail
    return out


def make_large_image(source: Path, megapixels: float, directory: Path) -> Path:
    """Resize ``source`` (aspect kept) to about ``megapixels`` MP; PNG in ``directory``."""
    img = load_rgb(source)
    w, h = img.size
    scale = (megapixels * 1e6 / (w * h)) ** 0.5
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    path = directory / f"large_{size[0]}x{size[1]}.png"
    img.resize(size, Image.Resampling.LANCZOS).save(path, compress_level=1)
    return path


# Stage split of one compress and one decompress in a fresh process, default (exported) runtime.
_SPLIT = (
    "import json, sys, time\n"
    "t0 = time.perf_counter()\n"
    "from vqcodec import codec\n"
    "import onnxruntime\n"
    "t1 = time.perf_counter()\n"
    "model = codec.load_model(None if sys.argv[3] == '-' else sys.argv[3])\n"
    "t2 = time.perf_counter()\n"
    "enc, dec = {}, {}\n"
    "data = codec.compress(sys.argv[1], int(sys.argv[2]), model, timings=enc)\n"
    "t3 = time.perf_counter()\n"
    "codec.decompress(data, model, timings=dec)\n"
    "t4 = time.perf_counter()\n"
    "print(json.dumps({'runtime': type(model).__name__, 'imports_s': t1 - t0, 'model_load_s': t2 - t1,\n"
    "                  'compress': {**enc, 'total_s': t3 - t2}, 'decompress': {**dec, 'total_s': t4 - t3}}))\n"
)


def stage_split(image_path: Path, quality: int, model: str | None) -> dict:
    """Imports, model load, network (quantiser included) and entropy coding of the default runtime, fresh process."""
    env = ours.cli_command(model_path=None)[1]
    proc = subprocess.run([sys.executable, "-c", _SPLIT, str(image_path), str(quality), model or "-"],
                          env=env, capture_output=True, timeout=600)
    if proc.returncode != 0:
        return {"error": proc.stderr.decode("utf-8", "replace")[-2000:]}
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def whole_process(image_path: Path, quality: int, model: str | None, large_mp: float, repeat: int) -> dict:
    """CLI runs with the default runtime (the export, onnxruntime) and with ``--runtime keras`` as the baseline."""
    out = {"image": str(image_path), "quality": quality}
    with tempfile.TemporaryDirectory(prefix="vqcodec-speed-") as tmp:
        tmp = Path(tmp)
        env = ours.cli_command(model_path=None)[1]
        out["startup_import_keras"] = _best_of(
            lambda: run_measured([sys.executable, "-c", "import keras"], env=env), repeat)

        def pair(src: Path, tag: str, repeat: int, runtime: str) -> dict:
            vqc, png = tmp / f"{tag}.vqc", tmp / f"{tag}.png"
            argv, env = ours.cli_command("compress", str(src), "-o", str(vqc), "-q", str(quality), "--force",
                                         "--runtime", runtime, model_path=model)
            comp = _best_of(lambda: run_measured(argv, env=env), repeat)
            res = {"pixels": _pixels(src), "runtime": runtime, "compress": comp}
            if comp["returncode"] == 0 and vqc.exists():
                res["bytes"] = vqc.stat().st_size
                argv, env = ours.cli_command("decompress", str(vqc), "-o", str(png), "--force",
                                             "--runtime", runtime, model_path=model)
                res["decompress"] = _best_of(lambda: run_measured(argv, env=env), repeat)
            return res

        for runtime in ("auto", "keras"):
            out[f"one_image_{runtime}"] = pair(image_path, "one", repeat, runtime)
        out["split"] = stage_split(image_path, quality, model)
        if large_mp > 0:
            big = make_large_image(image_path, large_mp, tmp)
            with Image.open(big) as im:
                size = list(im.size)
            for runtime in ("auto", "keras"):  # memory is the point: one run each
                out[f"large_image_{runtime}"] = {"made_from": str(image_path), "size": size,
                                                 **pair(big, "large", 1, runtime)}
    return out


def _best_of(fn, repeat: int) -> dict:
    """Median wall time over runs, max of peak RSS; failures are returned as they are."""
    runs = []
    for _ in range(max(1, repeat)):
        r = fn()
        runs.append(r)
        if r["returncode"] != 0:
            return r
    best = dict(runs[0])
    best["wall_s"] = statistics.median(r["wall_s"] for r in runs)
    best["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    best["runs"] = len(runs)
    return best


def _pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


# ---------------------------------------------------------------- report

def _ms(s: float) -> str:
    return f"{s * 1000:.1f}"


def table(result: dict) -> str:
    lines = []
    rows = result["in_process"]
    split_keys = ours.TIMING_KEYS + ("other",)
    if rows:
        lines += ["## In-process (mean per image; MP/s over all images; median of repeats)", "",
                  "| level | codec | quality | bpp | encode ms | decode ms | encode MP/s | decode MP/s "
                  "| encode ms: " + " / ".join(split_keys) + " | decode ms: " + " / ".join(split_keys)
                  + " | encode x ours | decode x ours |",
                  "|---" * 12 + "|"]
        for row in rows:
            ref = row["codecs"].get(ours.KEY)
            for key, s in row["codecs"].items():
                splits = []
                for side in ("encode", "decode"):
                    sp = s.get(f"{side}_split_s")
                    splits.append(" / ".join(_ms(sp.get(k, 0.0)) for k in split_keys) if sp else "")
                q = s.get("quality")
                qtxt = (f"{min(q)}-{max(q)}" if len(set(q)) > 1 else str(q[0])) if q else ""
                ratio = [f"{ref[f'{side}_s'] / s[f'{side}_s']:.2f}" if ref and key != ours.KEY and s[f"{side}_s"] > 0
                         else "" for side in ("encode", "decode")]
                lines.append(f"| {row['level']} | {s['name']} | {qtxt} | {s['bpp']:.3f} | {_ms(s['encode_s'])} | "
                             f"{_ms(s['decode_s'])} | {s['encode_mp_per_s']:.2f} | {s['decode_mp_per_s']:.2f} | "
                             f"{splits[0]} | {splits[1]} | {ratio[0]} | {ratio[1]} |")
        lines += ["", "'x ours' = vqcodec time / this codec's time (how many times faster this codec is).", ""]
    wp = result.get("whole_process")
    if wp:
        lines += ["## Whole process (`vqcodec` CLI, start-up included)", "",
                  "| run | pixels | wall s | peak RSS MiB |", "|---|---|---|---|"]
        st = wp["startup_import_keras"]
        lines.append(f"| python -c 'import keras' (start-up floor) | | {st['wall_s']:.2f} | {st['peak_rss_mib']:.0f} |")
        for tag in ("one_image", "large_image"):
            base = wp.get(f"{tag}_keras")
            for runtime in ("auto", "keras"):
                part = wp.get(f"{tag}_{runtime}")
                if not part:
                    continue
                label = "default runtime" if runtime == "auto" else "--runtime keras (baseline)"
                for step in ("compress", "decompress"):
                    r = part.get(step)
                    if r is None:
                        continue
                    status = "" if r["returncode"] == 0 else f" (FAILED rc={r['returncode']})"
                    ratio = ""
                    if runtime == "auto" and base and base.get(step) and r["wall_s"] > 0:
                        ratio = f" ({base[step]['wall_s'] / r['wall_s']:.1f}x faster)"
                    lines.append(f"| {tag.replace('_', ' ')}: {step} -q {wp['quality']}, {label}{status} | "
                                 f"{part['pixels'] / 1e6:.2f} MP | {r['wall_s']:.2f}{ratio} | {r['peak_rss_mib']:.0f} |")
        split = wp.get("split")
        if split and "error" not in split:
            lines += ["", f"Default runtime ({split['runtime']}), one fresh process, seconds:", "",
                      "| imports | model load | compress: network (quantiser included) / entropy / total "
                      "| decompress: network / entropy / total |", "|---|---|---|---|",
                      f"| {split['imports_s']:.3f} | {split['model_load_s']:.3f} | "
                      f"{split['compress']['network']:.3f} / {split['compress']['entropy']:.3f} / "
                      f"{split['compress']['total_s']:.3f} | {split['decompress']['network']:.3f} / "
                      f"{split['decompress']['entropy']:.3f} / {split['decompress']['total_s']:.3f} |"]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    keys = [k.strip().lower() for k in args.codecs.split(",") if k.strip()]
    unknown = sorted(set(keys) - {ours.KEY, *PILLOW_KEYS})
    if unknown:
        raise SystemExit(f"--codecs: unknown {', '.join(unknown)}")
    images = list_images(args.data, args.limit)
    loaded = [(p, load_rgb(p)) for p in images]

    codec = None
    if ours.KEY in keys:
        reason = ours.unavailable_reason()
        if reason is None:
            try:
                codec = ours.OurCodec(args.model)
                levels = codec.levels()
            except Exception as exc:  # noqa: BLE001
                reason = f"could not load the vqcodec model ({type(exc).__name__}: {exc})"
                codec = None
        if reason is not None:
            notice(f"skipping {ours.NAME}: {reason}")
    pillow = []
    for key in keys:
        if key in PILLOW_KEYS:
            c = pillow_codecs.BY_KEY[key]
            if c.available():
                pillow.append(c)
            else:
                notice(f"skipping {c.name}: this Pillow build lacks '{c.feature}' support")

    targets = [float(b) for b in args.bpp.split(",") if b.strip()]
    level_ids = levels if codec is not None else [f"{b} bpp" for b in targets]
    total = len(loaded) * len(level_ids) * ((1 if codec else 0) + len(pillow))
    if codec is not None:  # warm-up: graph tracing, model weights, thread pools
        codec.decode(codec.encode(loaded[0][1], levels[len(levels) // 2]))
    bar = Progress(total, "speed")
    per_level = {lvl: {} for lvl in level_ids}
    caches = {}
    for path, image in loaded:
        w, h = image.size
        for i, lvl in enumerate(level_ids):
            if codec is not None:
                rec = time_ours(codec, image, lvl, args.repeat)
                rec.update(image=path.name, pixels=w * h, bpp=bpp(rec["bytes"], w, h), quality=lvl)
                per_level[lvl].setdefault(ours.KEY, []).append(rec)
                target = rec["bpp"]
                bar.update(1, f"{path.name} {ours.KEY} {lvl}")
            else:
                target = targets[i]
            for c in pillow:
                q, _ = match_quality(c, image, target, caches.setdefault((c.key, path), {}))
                rec = time_pillow(c, image, q, args.repeat)
                rec.update(image=path.name, pixels=w * h, bpp=bpp(rec["bytes"], w, h), quality=q, target_bpp=target)
                per_level[lvl].setdefault(c.key, []).append(rec)
                bar.update(1, f"{path.name} {c.key} {lvl}")
    bar.close()

    names = {ours.KEY: ours.NAME, **{c.key: c.name for c in pillow}}
    in_process = []
    for lvl in level_ids:
        row = {"level": lvl, "codecs": {}}
        for key, records in per_level[lvl].items():
            row["codecs"][key] = {"name": names[key], **_summarise(records)}
        in_process.append(row)

    whole = None
    if codec is not None and not args.no_cli:
        q = args.cli_quality if args.cli_quality is not None else levels[len(levels) // 2]
        print(f"whole-process runs: vqcodec compress/decompress -q {q} on {images[0].name}"
              + (f" and a {args.large_mp:g} MP image" if args.large_mp > 0 else ""), file=sys.stderr)
        whole = whole_process(images[0], q, args.model, args.large_mp, args.repeat)
    elif not args.no_cli:
        notice("whole-process runs need vqcodec: skipped")

    date = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    command = "python -m benchmarks.speed " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    result = {
        "date": date, "command": command, "data": str(args.data), "images": [p.name for p in images],
        "repeat": args.repeat,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "libraries": pillow_codecs.library_versions(),
        "model": args.model,
        "pillow_matching": "per image and level, the integer quality whose bpp is closest (log ratio) to "
                           "vqcodec's bpp on that image (or to --bpp targets without vqcodec)",
        "in_process": in_process,
        "whole_process": whole,
        "runtime_s": time.perf_counter() - started,
    }
    out_dir = Path(args.out)
    write_json(out_dir / "speed.json", result)
    text = table(result)
    header = (f"# Speed benchmark\n\n- date: {date}\n- command: `{command}`\n- {len(images)} images from "
              f"{args.data}; {args.repeat} timed runs each (median)\n- machine: {os.cpu_count()} CPUs, "
              f"load average {result['machine']['load_average']}\n- runtime: {result['runtime_s']:.0f} s\n\n")
    (out_dir / "speed.md").write_text(header + text)
    print(text)
    print(f"wrote {out_dir / 'speed.json'} and {out_dir / 'speed.md'} in {result['runtime_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
