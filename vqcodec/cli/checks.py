"""Checks of the command line's arguments, inputs and outputs, made before any model or backend loads.

Standard library (and Pillow's format table) only, so a mistake is reported at once, in one line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from vqcodec.quality import MAX_QUALITY

PROG = "vqcodec"
STDIO = "-"


class CLIError(Exception):
    """An error whose message is shown as is (one line, no traceback)."""


class UsageError(CLIError):
    """Arguments that cannot go together or are out of range: exit status 2, as for argparse's own errors."""


def label(path: str) -> str:
    return "<stdin>" if path == STDIO else path


def read_input(path: str) -> bytes:
    if path == STDIO:
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def check_input(path: str) -> None:
    if path == STDIO:
        return
    p = Path(path)
    if not p.exists():
        raise CLIError(f"{path}: no such file or directory")
    if p.is_dir():
        raise CLIError(f"{path}: is a directory")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise CLIError(f"{path}: cannot read: {exc.strerror or exc}") from None


def check_writable_folder(folder: Path, shown: str) -> None:
    """Creates and removes a probe file: the only check that also sees read-only mounts and ACLs."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".vqcodec-probe.", dir=folder)
    except OSError as exc:
        raise CLIError(f"output folder {shown} is not writable: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def check_output(out: str, inp: str, force: bool) -> None:
    if out == STDIO:
        if sys.stdout.isatty():
            raise CLIError("refusing to write binary data to a terminal; use -o FILE or redirect stdout")
        return
    p = Path(out)
    if inp != STDIO and p.exists():
        try:
            same = os.path.samefile(inp, p)
        except OSError:
            same = False
        if same:
            raise CLIError(f"output {out} would overwrite the input; choose another name with -o")
    if p.exists() and not force:
        raise CLIError(f"output file {out} exists (use --force to overwrite)")
    if p.is_dir():
        raise CLIError(f"output {out} is a directory")
    parent = p.parent
    if not parent.is_dir():
        existing = next((a for a in parent.parents if a.exists()), None) if not parent.exists() else parent
        if existing is not None and not existing.is_dir():
            raise CLIError(f"output {out}: {existing} is a file, not a folder")
        raise CLIError(f"output folder {parent} does not exist")
    check_writable_folder(parent, str(parent))


def write_output(out: str, write, force: bool) -> None:
    """Write via ``write(fileobj)`` to ``out``: atomically (temp file + rename), or to stdout."""
    if out == STDIO:
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    from vqcodec.atomic_write import write_atomic

    try:
        write_atomic(out, write, overwrite=force)
    except FileExistsError:
        raise CLIError(f"output file {out} exists (use --force to overwrite)") from None
    except OSError as exc:
        # The temporary file's name means nothing to the user: name the output.
        raise CLIError(f"cannot write {out}: {exc.strerror or exc}") from exc


def plan_pairs(args, default_suffix: str) -> list[tuple[str, str]]:
    """(input, output) pairs; raises CLIError for a bad combination of arguments."""
    inputs = args.inputs
    if args.output is not None and len(inputs) > 1:
        raise UsageError("-o/--output can only be used with a single input file")
    if STDIO in inputs and len(inputs) > 1:
        raise UsageError("'-' (standard input) must be the only input")
    pairs = []
    for inp in inputs:
        if args.output is not None:
            out = args.output
        elif inp == STDIO:
            out = STDIO
        else:
            out = str(Path(inp).with_suffix(default_suffix))
        pairs.append((inp, out))
    outs = [o for _, o in pairs if o != STDIO]
    if len(set(outs)) != len(outs):
        raise UsageError("two inputs would be written to the same output file")
    return pairs


def model_path(model: str | None, option: str = "--model ") -> tuple[Path, str]:
    """(file, how to name it in messages) for ``--model`` (None: the shipped model); ``option`` prefixes messages."""
    if model is None:
        from vqcodec.codec.loading import default_model_path

        p = default_model_path()
        if not p.is_file():
            raise CLIError(f"the default model {p} is missing: reinstall vqcodec")
        return p, str(p)
    p = Path(model).expanduser()
    if not p.exists():
        raise CLIError(f"{option}{model}: no such file")
    if p.is_dir():
        raise CLIError(f"{option}{model}: is a directory")
    return p, model


def check_model(model: str | None, option: str = "--model ") -> None:
    """Checks ``--model`` without Keras: a readable Keras archive (a zip with config.json)."""
    p, shown = model_path(model, option)
    try:
        if not zipfile.is_zipfile(p):
            raise CLIError(f"{shown} is not a vqcodec model (not a Keras archive)")
        with zipfile.ZipFile(p) as archive:
            json.loads(archive.read("config.json"))
    except KeyError:
        raise CLIError(f"{shown} is not a vqcodec model (a zip file without the config.json of a Keras archive)") from None
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CLIError(f"{shown} is not a vqcodec model (unreadable Keras archive: {getattr(exc, 'strerror', None) or exc})") from None


def check_quality(quality: int | None, option: str = "-q/--quality") -> None:
    if quality is not None and not 0 <= quality <= MAX_QUALITY:
        raise UsageError(f"{option} must be in 0..{MAX_QUALITY}, got {quality}")


def byte_size(text: str) -> int:
    """``40000``, ``40k``, ``40kB``, ``1.5M``: bytes (k = 1000, M = 10^6)."""
    t = text.strip().lower().removesuffix("b")
    scale = {"k": 1000, "m": 1000**2, "g": 1000**3}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 40000, 40k, 1.5M)") from None
    if not (math.isfinite(value) and value * scale >= 1):
        raise argparse.ArgumentTypeError(f"size must be at least 1 byte, got {text!r}")
    return int(round(value * scale))


def check_targets(args) -> None:
    if args.lossless and args.quality is not None:
        raise UsageError("--lossless has no quality level; give -q/--quality or --lossless, not both")
    if getattr(args, "size", None) is None and getattr(args, "psnr", None) is None:
        if getattr(args, "strict", False):
            raise UsageError("--strict needs --size or --psnr")
        return
    if args.size is not None and args.psnr is not None:
        raise UsageError("give --size or --psnr, not both")
    if args.quality is not None:
        raise UsageError("give -q/--quality or a --size/--psnr target, not both")
    if args.lossless:
        raise UsageError("--lossless has no size or PSNR to aim for; drop --size/--psnr")
    if args.psnr is not None and not 0 < args.psnr < 200:
        raise UsageError(f"--psnr must be above 0 and below 200 dB, got {args.psnr:g}")


def check_output_folder(folder: str, option: str = "output", why: str = " (a folder input needs an output folder)") -> None:
    """An output folder (``-o DIR`` of a folder input, ``demo --save DIR``): a folder, or one that can be made, and writable."""
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise CLIError(f"{option} {folder} is not a folder{why}")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"{option} {folder}: {existing} is not a folder")
    check_writable_folder(existing, str(existing))


def folder_input(args) -> str | None:
    """The input folder when the command is given one (it must be the only input, with -o OUTDIR)."""
    folders = [i for i in args.inputs if i != STDIO and Path(i).is_dir()]
    if not folders:
        return None
    if len(args.inputs) > 1:
        raise UsageError(f"{folders[0]} is a folder: a folder must be the only input")
    if args.output is None:
        raise UsageError(f"{folders[0]} is a folder: give the output folder with -o OUTDIR")
    if args.output == STDIO:
        raise UsageError("a folder cannot be written to standard output; give -o OUTDIR")
    check_output_folder(args.output)
    return folders[0]


def output_format(out: str) -> str:
    if out == STDIO:
        return "PNG"
    from PIL import Image

    Image.init()
    suffix = Path(out).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if not suffix or fmt is None or fmt not in Image.SAVE:
        raise CLIError(f"{out}: cannot tell an image format Pillow can write from the suffix {suffix!r}")
    return fmt
