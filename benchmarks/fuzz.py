"""Mutants of real ``.vqc`` files through the public API: every one must be refused by a format error or decode.

    python -m benchmarks.fuzz [--cases 10000] [--seed 0] [--model PATH] [--out benchmarks/results/fuzz]

Real files of every payload kind (learned at full and reduced coded size, grey,
with an alpha plane, lossless WebP, lossless PNG) are made with the model, then
mutated: bit flips, cuts, splices of bytes from another file, and header field
edits (each field set to 0, 1, one more or less, double, or a random value).
Most mutants get their checksum recomputed so they reach the payload checks.
Each goes through ``vqcodec.decompress``. Outcomes are counted: *refused* by a
``bitstream.FormatError`` (by class), *decoded* to an image of the size and mode
its header states, or a *defect*: any other exception, or an image that is not
what the header states. Writes ``fuzz.json`` and ``fuzz.md``; exits 1 on a defect.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import io
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "fuzz"
SAMPLE = Path(__file__).resolve().parents[1] / "vqcodec" / "samples" / "endeavour.png"
FIELDS = ("width", "height", "mode", "kind", "level", "latent_height", "latent_width", "tile_size",
          "coded_width", "coded_height")


def real_files(model) -> dict[str, bytes]:
    """One real file of each payload kind, small enough that a decode takes milliseconds."""
    import bitstream
    import vqcodec
    from vqcodec.codec import lossless

    with Image.open(SAMPLE) as im:
        photo = im.convert("RGB").crop((200, 150, 296, 222))  # 96x72
    small = photo.crop((0, 0, 64, 48))
    alpha = Image.linear_gradient("L").resize(small.size)
    rgba = small.copy()
    rgba.putalpha(alpha)
    la = small.convert("L")
    la.putalpha(alpha)
    graphic = Image.new("RGB", (40, 30), (250, 250, 250))
    graphic.paste((20, 90, 200), (5, 5, 25, 20))
    header = bitstream.Header(None, graphic.width, graphic.height, "RGB", kind="lossless")
    png = io.BytesIO()
    graphic.save(png, format="PNG", optimize=True)
    files = {
        "learned RGB": vqcodec.compress(small, 75, model, lossless=False),
        "learned RGB, coded smaller": vqcodec.compress(photo, 8, model, lossless=False),
        "learned L": vqcodec.compress(small.convert("L"), 60, model, lossless=False),
        "learned RGBA (alpha plane)": vqcodec.compress(rgba, 75, model, lossless=False),
        "learned LA (alpha plane)": vqcodec.compress(la, 40, model, lossless=False),
        "lossless WebP": bitstream.pack(header, lossless._webp(graphic)),
        "lossless PNG": bitstream.pack(header, png.getvalue()),
    }
    assert bitstream.read_header(files["learned RGB, coded smaller"]).resampled
    return files


def _with_crc(data: bytes) -> bytes:
    """``data`` with its last four bytes made the CRC-32 of the rest (the container's checksum)."""
    if len(data) < 4:
        return data
    return data[:-4] + (zlib.crc32(data[:-4]) & 0xFFFFFFFF).to_bytes(4, "little")


def _edit_field(data: bytes, rng: np.random.Generator) -> bytes | None:
    """The file with one header field changed and the file repacked (checksum recomputed); None if impossible."""
    import bitstream

    header, payload, alpha = bitstream.unpack(data, max_pixels=None)
    name = FIELDS[rng.integers(len(FIELDS))]
    value = getattr(header, name)
    if name == "mode":
        new = bitstream.MODES[rng.integers(len(bitstream.MODES))]
    elif name == "kind":
        new = bitstream.KINDS[rng.integers(len(bitstream.KINDS))]
    else:
        new = int(rng.choice([0, 1, value - 1, value + 1, 2 * value, int(rng.integers(0, 1 << 16)), 1 << 14]))
    try:
        changed = dataclasses.replace(header, **{name: new})
        if changed.kind == "lossless" and header.kind != "lossless":
            changed = dataclasses.replace(changed, model_fingerprint=None)
        return bitstream.pack(changed, payload, alpha if changed.has_alpha_section else b"")
    except (ValueError, TypeError):
        return None


def mutate(files: list[bytes], rng: np.random.Generator) -> tuple[str, bytes]:
    """One mutant of a random file: ``(how, bytes)``."""
    data = files[rng.integers(len(files))]
    how = ("flip", "cut", "splice", "field")[rng.integers(4)]
    if how == "field":
        edited = _edit_field(data, rng)
        if edited is not None:
            return how, edited
        how = "flip"
    out = bytearray(data)
    if how == "flip":
        for _ in range(int(rng.integers(1, 9))):
            at = int(rng.integers(len(out)))
            out[at] ^= 1 << int(rng.integers(8))
    elif how == "cut":
        start = int(rng.integers(len(out)))
        stop = min(len(out), start + int(rng.integers(1, 64))) if rng.random() < 0.5 else len(out)
        del out[start:stop]
    else:
        other = files[rng.integers(len(files))]
        a, b = sorted(int(i) for i in rng.integers(0, len(other), 2))
        at = int(rng.integers(len(out)))
        out[at : at + int(rng.integers(0, 16))] = other[a : b + 1]
    data = bytes(out)
    return how, _with_crc(data) if rng.random() < 0.9 else data


def run(cases: int, seed: int, model) -> dict:
    import bitstream
    import vqcodec

    files = real_files(model)
    for name, data in files.items():  # the originals decode
        vqcodec.decompress(data, model)
    originals = list(files.values())
    rng = np.random.default_rng(seed)
    outcomes: collections.Counter = collections.Counter()
    by_mutation: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    defects: list[dict] = []
    slowest = (0.0, "")
    started = time.perf_counter()
    for case in range(cases):
        how, data = mutate(originals, rng)
        t0 = time.perf_counter()
        try:
            img = vqcodec.decompress(data, model)
            header = bitstream.read_header(data)
            if img.size != (header.width, header.height) or img.mode != header.mode:
                raise AssertionError(f"decoded {img.size} {img.mode}, the header says "
                                     f"{header.width}x{header.height} {header.mode}")
            outcome = "decoded"
        except bitstream.FormatError as exc:
            outcome = f"refused: {type(exc).__name__}"
        except Exception as exc:  # noqa: BLE001  (any other exception is what we count)
            outcome = f"defect: {type(exc).__name__}"
            if len(defects) < 20:
                defects.append({"case": case, "mutation": how, "error": f"{type(exc).__name__}: {exc}"[:300],
                                "file": data.hex() if len(data) < 4096 else None})
        seconds = time.perf_counter() - t0
        if seconds > slowest[0]:
            slowest = (seconds, f"case {case} ({how}): {outcome}")
        outcomes[outcome] += 1
        by_mutation[how][outcome.split(":")[0]] += 1
        if (case + 1) % 5000 == 0:
            print(f"{case + 1} of {cases} cases, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return {
        "command": f"python -m benchmarks.fuzz --cases {cases} --seed {seed}",
        "cases": cases,
        "seed": seed,
        "files": {name: len(data) for name, data in files.items()},
        "outcomes": dict(sorted(outcomes.items())),
        "by_mutation": {how: dict(sorted(c.items())) for how, c in sorted(by_mutation.items())},
        "defects": defects,
        "slowest_case_seconds": round(slowest[0], 3),
        "slowest_case": slowest[1],
        "seconds": round(time.perf_counter() - started, 1),
    }


def report(results: dict) -> str:
    lines = [
        f"{results['cases']} mutants of {len(results['files'])} real files (`{results['command']}`, "
        f"{results['seconds']} s; slowest case {results['slowest_case_seconds']} s).",
        "",
        "| outcome | mutants |",
        "|---|---:|",
    ] + [f"| {outcome} | {count} |" for outcome, count in results["outcomes"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10000, help="mutants to try (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error(f"--cases must be at least 1, got {args.cases}")

    import vqcodec

    model = vqcodec.load_model(args.model)
    results = run(args.cases, args.seed, model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps(results, indent=2) + "\n")
    text = report(results)
    (out / "fuzz.md").write_text(text)
    print(text, end="")
    for defect in results["defects"]:
        print(f"defect in case {defect['case']} ({defect['mutation']}): {defect['error']}", file=sys.stderr)
    return 1 if any(o.startswith("defect") for o in results["outcomes"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
