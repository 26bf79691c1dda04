"""Folder benchmark: ``python -m benchmarks.batch --data DIR [--jobs 1,2] [--large-mp 24] [--large-count N] [--model PATH] [--cluster 1,2]``.

Runs ``vqcodec compress DIR -o OUT`` and ``vqcodec decompress OUT -o BACK`` as fresh
processes, once per worker count (``--jobs``; the default count always runs too), and
reports wall time, images per second, megapixels per second and the peak resident memory
of the whole process tree (sampled from /proc, so worker processes are summed). Then the
same for a folder of large images (``--large-mp`` each, made by resizing the first
images), as many as the default worker count, so that every worker holds one at once. Linux only (the memory sampler reads /proc). Writes batch.json and batch.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from . import ours
from .common import list_images, notice, write_json
from .speed import make_large_image

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of images (e.g. ../shared/data/kodak)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: benchmarks/results)")
    p.add_argument("--model", default=None, help="vqcodec model file (default: the shipped model)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images (sorted by name), copied to a temporary folder")
    p.add_argument("--jobs", default="1,2", help="comma-separated worker counts to compare (the default always runs)")
    p.add_argument("--large-mp", type=float, default=24.0, help="megapixels of each large image (0 disables)")
    p.add_argument("--large-count", type=int, default=None, help="large images (default: the default worker count)")
    p.add_argument("--cluster", default="", metavar="LIST",
                   help="also run on local Dask clusters of these worker counts (e.g. 1,2: --cluster local:N); "
                   "needs vqcodec[dask]")
    return p.parse_args(argv)


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total


def run_tree_measured(argv: list[str], env: dict) -> dict:
    """Wall seconds, return code and peak RSS (MiB) of the whole process tree, sampled every 50 ms."""
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    out = {"returncode": proc.returncode, "wall_s": wall, "peak_rss_mib": peak[0] / 2**20}
    if proc.returncode != 0:
        out["stderr_tail"] = err.decode("utf-8", "replace")[-2000:]
    return out


def _folder_stats(folder: Path) -> dict:
    files = list_images(folder)
    pixels = 0
    for p in files:
        with Image.open(p) as im:
            pixels += im.size[0] * im.size[1]
    return {"files": len(files), "pixels": pixels}


def _digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes: equal digests, identical trees."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def folder_run(data: Path, jobs: int | None, model: str | None, tmp: Path, cluster: int | None = None) -> dict:
    """compress then decompress ``data`` with ``jobs`` workers (None: the CLI's default), or on a local Dask
    cluster of ``cluster`` workers; the outputs' digests say whether the bytes are the same."""
    stats = _folder_stats(data)
    tag = f"cluster{cluster}" if cluster else "default" if jobs is None else f"j{jobs}"
    coded, back = tmp / f"{tag}-vqc", tmp / f"{tag}-png"
    if cluster:
        extra = ["--cluster", f"local:{cluster}"]
    else:
        extra = [] if jobs is None else ["--jobs", str(jobs)]
    label = f"cluster local:{cluster}" if cluster else "default" if jobs is None else jobs
    result = {"jobs": label, **stats}
    for step, src, dst in (("compress", data, coded), ("decompress", coded, back)):
        argv, env = ours.cli_command(step, str(src), "-o", str(dst), "--quiet", *extra, model_path=model)
        r = run_tree_measured(argv, env)
        r["images_per_s"] = stats["files"] / r["wall_s"]
        r["mp_per_s"] = stats["pixels"] / 1e6 / r["wall_s"]
        result[step] = r
        if r["returncode"] != 0:
            break
        r["sha256"] = _digest(dst)
    shutil.rmtree(coded, ignore_errors=True)
    shutil.rmtree(back, ignore_errors=True)
    return result


def table(result: dict) -> str:
    lines = [
        f"# Folder benchmark ({result['date']}, {result['machine']}, {result['cpus']} CPUs)",
        "",
        "Whole `vqcodec compress DIR -o OUT` / `vqcodec decompress OUT -o BACK` processes, start-up included; "
        "peak RSS summed over the process tree (a local cluster's scheduler and workers included); "
        "bytes: the outputs against the first run of the folder (SHA-256 of the tree).",
        "",
        f"Command: `{result.get('command', 'python -m benchmarks.batch')}`",
        "",
        "| folder | jobs | step | wall s | images/s | MP/s | peak RSS MiB | bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    first: dict = {}
    for run in result["runs"]:
        for step in ("compress", "decompress"):
            r = run.get(step)
            if r is None:
                continue
            failed = "" if r["returncode"] == 0 else " (failed)"
            reference = first.setdefault((run["folder"], step), r.get("sha256"))
            same = "–" if r.get("sha256") is None else "same" if r["sha256"] == reference else "DIFFER"
            lines.append(
                f"| {run['folder']} ({run['files']} files, {run['pixels'] / 1e6:.1f} MP) | {run['jobs']} | {step}{failed} | "
                f"{r['wall_s']:.1f} | {r['images_per_s']:.2f} | {r['mp_per_s']:.2f} | {r['peak_rss_mib']:.0f} | {same} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    data = Path(args.data)
    images = list_images(data)
    if not images:
        notice(f"no images in {data}")
        return 1
    jobs = [int(j) for j in args.jobs.split(",") if j.strip()]
    runs = []
    with tempfile.TemporaryDirectory(prefix="vqcodec-batch-") as tmp:
        tmp = Path(tmp)
        if args.limit is not None:
            images = images[: args.limit]
            data = tmp / data.name
            data.mkdir()
            for image in images:
                shutil.copy(image, data / image.name)
        for j in [None] + jobs:
            notice(f"{data}: jobs {j or 'default'}")
            runs.append({"folder": data.name, **folder_run(data, j, args.model, tmp)})
        for n in [int(c) for c in args.cluster.split(",") if c.strip()]:
            notice(f"{data}: a local Dask cluster of {n} worker{'s' * (n != 1)}")
            runs.append({"folder": data.name, **folder_run(data, None, args.model, tmp, cluster=n)})
        if args.large_mp > 0:
            from vqcodec.codec.batch import default_jobs

            count = args.large_count or default_jobs(len(images))
            large = tmp / "large"
            large.mkdir()
            for i in range(count):
                made = make_large_image(images[i % len(images)], args.large_mp, large)
                made.rename(large / f"{i}_{made.name}")
            name = f"{count} image{'s' * (count != 1)} of {args.large_mp:g} MP"
            notice(f"{name}: default jobs")
            runs.append({"folder": name, **folder_run(large, None, args.model, tmp)})
    result = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.batch " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "model": args.model or "default",
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "batch.json", result)
    (out / "batch.md").write_text(table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
