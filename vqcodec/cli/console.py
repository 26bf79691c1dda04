"""What the command line prints: its own error, warning and summary lines, and a progress bar; the backend's
start-up noise kept off stderr."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path

from vqcodec.cli.checks import PROG, STDIO, CLIError
from vqcodec.metrics import bpp


def error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def describe(exc: BaseException) -> str:
    """One line describing ``exc`` for the user."""
    if isinstance(exc, CLIError):
        return str(exc)
    from vqcodec.codec.batch import describe

    return describe(exc)


@contextlib.contextmanager
def backend_quiet(verbose: bool):
    """Keeps the backend's start-up messages off stderr (unless ``verbose``).

    TensorFlow's C++ runtime writes some lines (absl, CUDA probing, CPU
    features) straight to file descriptor 2 whatever TF_CPP_MIN_LOG_LEVEL says,
    so fd 2 points at /dev/null while the backend is imported and started.
    Nothing of ours is printed meanwhile; errors are reported after it.
    """
    if verbose:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        saved = None
    devnull = os.open(os.devnull, os.O_WRONLY) if saved is not None else None
    try:
        if saved is not None:
            os.dup2(devnull, 2)
        yield
    finally:
        if saved is not None:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
        import logging

        for name in ("absl", "tensorflow", "jax"):  # their Python-side warnings
            logging.getLogger(name).setLevel(logging.ERROR)


def start_backend(what: str = "running a model through Keras") -> None:
    """Imports Keras and lets the backend probe its devices (where the start-up messages come from)."""
    from vqcodec.extras import require

    keras = require("keras", "train", what)

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices()  # does not fix the device set-up (training may still do that)
    elif keras.backend.backend() == "jax":
        import jax

        jax.devices()


def is_ours(category: type, filename: str) -> bool:
    if not issubclass(category, UserWarning):
        return False
    if category.__module__.split(".")[0] in ("vqcodec", "bitstream"):
        return True
    here = Path(__file__).resolve().parent
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    return here in path.parents or here.parent / "bitstream" in path.parents


@contextlib.contextmanager
def own_warnings(verbose: bool, where: str | None = None):
    """vqcodec's warnings as one ``vqcodec: warning:`` line each; Keras' and TF's only with --verbose."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        show_default = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if is_ours(category, filename):
                text = (str(message).strip().splitlines() or [category.__name__])[0]
                if where and where != STDIO and Path(where).name not in text:
                    text = f"{where}: {text}"
                print(f"{PROG}: warning: {text}", file=sys.stderr)
            elif verbose:
                show_default(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def report(exc: BaseException, verbose: bool, where: str | None = None) -> None:
    if verbose:
        import traceback

        traceback.print_exception(exc)
    message = describe(exc)
    if where and not message.startswith(where):
        message = f"{where}: {message}"
    error(message)


def progress_bar(tasks, quiet: bool):
    """A tqdm bar in megapixels on a terminal's stderr; None elsewhere or with --quiet."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = sum(t.pixels for t in tasks) / 1e6
    return tqdm(
        total=round(total, 3), unit="MP", file=sys.stderr, dynamic_ncols=True, leave=False,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} MP [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )


def size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} bytes"


def in_order(run, tasks):
    """The outcomes in the order the files were named: parallel workers finish in any order."""
    position = {(task.source, task.target): i for i, task in enumerate(tasks)}
    held, next_index = {}, 0
    for outcome in run:
        held[position[outcome.task.source, outcome.task.target]] = outcome
        while next_index in held:
            yield held.pop(next_index)
            next_index += 1
    yield from (held[i] for i in sorted(held))


def outcome_line(outcome, direction: str) -> str:
    if direction == "compress":
        line = compress_line(outcome.width, outcome.height, outcome.mode, outcome.coding, outcome.out_bytes)
        if outcome.psnr is None:
            return line
        return f"{line}, exact" if outcome.psnr == float("inf") else f"{line}, {outcome.psnr:.2f} dB"
    return f"{outcome.width}x{outcome.height} {outcome.mode}"


def summary(direction: str, outcomes, failed, skipped, seconds: float) -> str:
    """One line: files, bytes in and out, overall bpp, mean PSNR when measured, speed."""
    done = [o for o in outcomes if o.status == "done"]
    kept = [o for o in outcomes if o.status == "exists"]
    parts = [f"{len(failed)} failed"]
    if kept:
        parts.append(f"{len(kept)} already done (kept; --force redoes them)")
    if skipped:
        parts.append(f"{len(skipped)} skipped ({'not images' if direction == 'compress' else 'not .vqc files'})")
    verb = "compressed" if direction == "compress" else "decompressed"
    line = f"{PROG}: {verb} {len(done)} file{'s' * (len(done) != 1)}, {', '.join(parts)}"
    if done:
        pixels = sum(o.width * o.height for o in done)
        bytes_in, bytes_out = sum(o.in_bytes for o in done), sum(o.out_bytes for o in done)
        coded = bytes_out if direction == "compress" else bytes_in
        line += f"; {size(bytes_in)} -> {size(bytes_out)}, {8 * coded / pixels:.3f} bpp"
        measured = [o.psnr for o in done if o.psnr is not None and o.psnr != float("inf")]
        if measured:
            line += f", mean PSNR {sum(measured) / len(measured):.2f} dB"
        exact = sum(o.psnr == float("inf") for o in done)
        if exact:
            line += f", {exact} exact (lossless)"
        line += f"; {seconds:.1f} s, {pixels / 1e6 / max(seconds, 1e-9):.2f} MP/s"
    return line


def compress_line(width: int, height: int, mode: str, coding: str, nbytes: int) -> str:
    return f"{width}x{height} {mode}, {coding}, {nbytes} bytes, {bpp(nbytes, width, height):.3f} bpp"
