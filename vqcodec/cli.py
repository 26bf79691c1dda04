"""The ``vqcodec`` command line: compress, decompress, info, demo, train.

Start-up is kept cheap: this module imports only the standard library at the
top; ``info`` needs only the ``bitstream`` package, and Keras/TensorFlow are
imported when a model is actually needed (compress, decompress, demo, train).
Every argument, input and output location is checked before that import, so
a mistake is reported at once. The backend's start-up messages are kept off
stderr: it holds only this command's own lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

from vqcodec.quality import DEFAULT_QUALITY, MAX_QUALITY, level_of

PROG = "vqcodec"
STDIO = "-"
GLOBAL_FLAGS = ("-v", "--verbose", "--quiet")
QUIET_HELP = "no summary line per file (compress, decompress) and no progress display (train)"


class CLIError(Exception):
    """An error whose message is shown as is (one line, no traceback)."""


# -- helpers ------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _describe(exc: BaseException) -> str:
    """One line describing ``exc`` for the user."""
    if isinstance(exc, CLIError):
        return str(exc)
    from vqcodec.batch import describe

    return describe(exc)


def _label(path: str) -> str:
    return "<stdin>" if path == STDIO else path


def _read_input(path: str) -> bytes:
    if path == STDIO:
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _check_input(path: str) -> None:
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


def _check_writable_folder(folder: Path, shown: str) -> None:
    """Creates and removes a probe file: the only check that also sees read-only mounts and ACLs."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".vqcodec-probe.", dir=folder)
    except OSError as exc:
        raise CLIError(f"output folder {shown} is not writable: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def _check_output(out: str, inp: str, force: bool) -> None:
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
        raise CLIError(f"output folder {parent} does not exist")
    _check_writable_folder(parent, str(parent))


def _write_output(out: str, write, force: bool) -> None:
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


def _plan(args, default_suffix: str) -> list[tuple[str, str]]:
    """(input, output) pairs; raises CLIError for a bad combination of arguments."""
    inputs = args.inputs
    if args.output is not None and len(inputs) > 1:
        raise CLIError("-o/--output can only be used with a single input file")
    if STDIO in inputs and len(inputs) > 1:
        raise CLIError("'-' (standard input) must be the only input")
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
        raise CLIError("two inputs would be written to the same output file")
    return pairs


def _model_path(model: str | None) -> tuple[Path, str]:
    """(file, how to name it in messages) for ``--model`` (None: the shipped model)."""
    if model is None:
        from importlib.resources import files

        p = Path(str(files("vqcodec") / "models" / "default.keras"))
        if not p.is_file():
            raise CLIError(f"the default model {p} is not installed; pass --model PATH")
        return p, str(p)
    p = Path(model).expanduser()
    if not p.exists():
        raise CLIError(f"--model {model}: no such file")
    if p.is_dir():
        raise CLIError(f"--model {model}: is a directory")
    return p, model


def _check_model(model: str | None) -> None:
    """Checks ``--model`` without Keras: a readable Keras archive (a zip with config.json)."""
    p, shown = _model_path(model)
    try:
        if not zipfile.is_zipfile(p):
            raise CLIError(f"{shown} is not a vqcodec model (not a Keras archive)")
        with zipfile.ZipFile(p) as archive:
            json.loads(archive.read("config.json"))
    except KeyError:
        raise CLIError(f"{shown} is not a vqcodec model (a zip file without the config.json of a Keras archive)") from None
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CLIError(f"{shown} is not a vqcodec model (unreadable Keras archive: {_describe(exc)})") from None


def _check_quality(quality: int | None) -> None:
    if quality is not None and not 0 <= quality <= MAX_QUALITY:
        raise CLIError(f"quality must be in 0..{MAX_QUALITY}, got {quality}")


@contextlib.contextmanager
def _backend_quiet(verbose: bool):
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


def _start_backend() -> None:
    """Imports Keras and lets the backend probe its devices (where the start-up messages come from)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.list_physical_devices()  # does not fix the device set-up (training may still do that)
    elif keras.backend.backend() == "jax":
        import jax

        jax.devices()


def _is_ours(category: type, filename: str) -> bool:
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
def _own_warnings(verbose: bool, where: str | None = None):
    """vqcodec's warnings as one ``vqcodec: warning:`` line each; Keras' and TF's only with --verbose."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        show_default = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if _is_ours(category, filename):
                text = (str(message).strip().splitlines() or [category.__name__])[0]
                if where and where != STDIO and Path(where).name not in text:
                    text = f"{where}: {text}"
                print(f"{PROG}: warning: {text}", file=sys.stderr)
            elif verbose:
                show_default(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def _run_files(pairs, args, prepare, process) -> int:
    """Checks the model and every pair cheaply first, then processes the good ones; one error line per failure."""
    verbose = args.verbose
    try:
        _check_model(args.model)
        _check_quality(getattr(args, "quality", None))
    except Exception as exc:
        _report(exc, verbose)
        return 1
    status = 0
    ready = []
    for inp, out in pairs:
        try:
            _check_input(inp)
            _check_output(out, inp, args.force)
            ready.append((inp, out))
        except Exception as exc:
            _report(exc, verbose, _label(inp))
            status = 1
    if not ready:
        return status
    try:
        with _own_warnings(verbose):
            state = prepare()
    except Exception as exc:
        _report(exc, verbose)
        return 1
    for inp, out in ready:
        try:
            with _own_warnings(verbose, _label(inp)):
                process(state, inp, out)
        except Exception as exc:
            _report(exc, verbose, _label(inp))
            status = 1
    return status


def _report(exc: BaseException, verbose: bool, where: str | None = None) -> None:
    if verbose:
        import traceback

        traceback.print_exception(exc)
    message = _describe(exc)
    if where and not message.startswith(where):
        message = f"{where}: {message}"
    _error(message)


def _bpp(nbytes: int, width: int, height: int) -> float:
    return 8.0 * nbytes / (width * height)


# -- commands -----------------------------------------------------------------------


def _load_model(args):
    """The model: its exported graphs through onnxruntime when they exist (no Keras import), else Keras."""
    from vqcodec import codec
    from vqcodec.runtime import has_export

    path, shown = _model_path(args.model)
    runtime = getattr(args, "runtime", "auto")
    if runtime == "onnx" or (runtime == "auto" and has_export(path)):
        return codec.load_model(path, runtime="onnx")
    if runtime == "auto" and not args.quiet and sys.stderr.isatty():
        print(f"{PROG}: notice: {shown} has no export, so it runs through Keras (seconds slower to start); "
              f"'vqcodec export {shown}' makes one", file=sys.stderr)
    with _backend_quiet(args.verbose):
        _start_backend()
        return codec.load_model(path, runtime="keras")


def _compress_one(model, inp: str, out: str, args) -> None:
    """Standard input or output: one image, coded in this process."""
    from vqcodec import codec

    data = codec.compress(_read_input(inp), model=model, **_compress_options(args))
    _write_output(out, lambda f: f.write(data), args.force)
    if out != STDIO and not args.quiet:
        import bitstream

        h = bitstream.read_header(data)
        line = _compress_line(h.width, h.height, h.mode, codec.describe_coding(data), len(data))
        print(f"{_label(inp)} -> {out}: {line}", file=sys.stderr)


def _compress_options(args) -> dict:
    """codec.compress keyword arguments from the command line."""
    return dict(quality=args.quality, size=args.size, psnr=args.psnr, strict=args.strict,
                lossless=True if args.lossless else None)


def _compress_line(width: int, height: int, mode: str, coding: str, nbytes: int) -> str:
    return f"{width}x{height} {mode}, {coding}, {nbytes} bytes, {_bpp(nbytes, width, height):.3f} bpp"


def _output_format(out: str) -> str:
    if out == STDIO:
        return "PNG"
    from PIL import Image

    Image.init()
    suffix = Path(out).suffix.lower()
    fmt = Image.registered_extensions().get(suffix)
    if not suffix or fmt is None or fmt not in Image.SAVE:
        raise CLIError(f"{out}: cannot tell an image format Pillow can write from the suffix {suffix!r}")
    return fmt


def _decompress_one(model, inp: str, out: str, args) -> None:
    """Standard input or output: one file, decoded in this process."""
    from vqcodec import batch, codec

    img = codec.decompress(_read_input(inp), model=model)
    _write_output(out, batch.image_writer(img, _output_format(out)), args.force)
    if out != STDIO and not args.quiet:
        print(f"{_label(inp)} -> {out}: {img.width}x{img.height} {img.mode}", file=sys.stderr)


def _byte_size(text: str) -> int:
    """``40000``, ``40k``, ``40kB``, ``1.5M``: bytes (k = 1000, M = 10^6)."""
    t = text.strip().lower().removesuffix("b")
    scale = {"k": 1000, "m": 1000**2, "g": 1000**3}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if scale > 1 else t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 40000, 40k, 1.5M)") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return int(round(value * scale))


def _check_targets(args) -> None:
    if args.lossless and args.quality is not None:
        raise CLIError("--lossless has no quality level; give -q/--quality or --lossless, not both")
    if getattr(args, "size", None) is None and getattr(args, "psnr", None) is None:
        if getattr(args, "strict", False):
            raise CLIError("--strict needs --size or --psnr")
        return
    if args.size is not None and args.psnr is not None:
        raise CLIError("give --size or --psnr, not both")
    if args.quality is not None:
        raise CLIError("give -q/--quality or a --size/--psnr target, not both")
    if args.lossless:
        raise CLIError("--lossless has no size or PSNR to aim for; drop --size/--psnr")
    if args.psnr is not None and not 0 < args.psnr < 200:
        raise CLIError(f"--psnr must be between 0 and 200 dB, got {args.psnr:g}")


def _check_output_folder(folder: str, option: str = "output", why: str = " (a folder input needs an output folder)") -> None:
    """An output folder (``-o DIR`` of a folder input, ``demo --save DIR``): a folder, or one that can be made, and writable."""
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise CLIError(f"{option} {folder} is not a folder{why}")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"{option} {folder}: {existing} is not a folder")
    _check_writable_folder(existing, str(existing))


def _folder_input(args) -> str | None:
    """The input folder when the command is given one (it must be the only input, with -o OUTDIR)."""
    folders = [i for i in args.inputs if i != STDIO and Path(i).is_dir()]
    if not folders:
        return None
    if len(args.inputs) > 1:
        raise CLIError(f"{folders[0]} is a folder: a folder must be the only input")
    if args.output is None:
        raise CLIError(f"{folders[0]} is a folder: give the output folder with -o OUTDIR")
    if args.output == STDIO:
        raise CLIError("a folder cannot be written to standard output; give -o OUTDIR")
    _check_output_folder(args.output)
    return folders[0]


def _code(args, direction: str) -> int:
    """compress / decompress: standard streams in this process, files and folders through vqcodec.batch."""
    from vqcodec import batch

    if args.jobs is not None and args.jobs < 1:
        raise CLIError(f"--jobs must be at least 1, got {args.jobs}")
    if direction == batch.COMPRESS:
        _check_targets(args)
    folder = _folder_input(args)
    _check_model(args.model)
    _check_quality(getattr(args, "quality", None))
    if folder is not None:
        plan = batch.plan_folder(folder, args.output, direction)
        return _run_batch(args, direction, plan.tasks, plan.failed, plan.skipped, folder=True)

    suffix = ".vqc" if direction == batch.COMPRESS else ".png"
    pairs = _plan(args, suffix)
    if direction == batch.DECOMPRESS:
        for _, out in pairs:  # fail fast on an unknown output format
            _output_format(out)
    if any(STDIO in pair for pair in pairs):
        one = _compress_one if direction == batch.COMPRESS else _decompress_one
        return _run_files(pairs, args, lambda: _load_model(args), lambda model, i, o: one(model, i, o, args))
    tasks, failed = [], []
    for inp, out in pairs:
        try:
            _check_input(inp)
            _check_output(out, inp, args.force)
            tasks.append(batch.Task(Path(inp), Path(out), batch.pixels_of(Path(inp), direction)))
        except Exception as exc:
            _report(exc, args.verbose, _label(inp))
            failed.append(batch.Outcome(batch.Task(Path(inp), Path(out)), "failed", _describe(exc)))
    return _run_batch(args, direction, tasks, failed, [], folder=False)


def _progress_bar(tasks, quiet: bool):
    """A tqdm bar in megapixels on a terminal's stderr; None elsewhere or with --quiet."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = sum(t.pixels for t in tasks) / 1e6
    return tqdm(
        total=round(total, 3), unit="MP", file=sys.stderr, dynamic_ncols=True, leave=False,
        bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} MP [{elapsed}<{remaining}, {rate_fmt}{postfix}]",
    )


def _run_batch(args, direction: str, tasks, failed, skipped, folder: bool) -> int:
    """Runs the tasks with progress, then prints the summary; one error line per failed file."""
    import time

    from vqcodec import batch

    verbose = args.verbose
    finished, pending = batch.split_finished(tasks, direction, overwrite=args.force or not folder)
    jobs = min(args.jobs or batch.default_jobs(len(pending)), max(1, len(pending)))
    model = args.model
    if pending:
        try:
            model = _load_model(args) if jobs == 1 else str(_model_path(args.model)[0])
        except Exception as exc:
            _report(exc, verbose)
            return 1
    bar = _progress_bar(tasks, args.quiet)
    outcomes = list(finished)
    t0 = time.perf_counter()

    def advance(pixels: float) -> None:
        bar.update(pixels / 1e6)

    def say(line: str) -> None:
        (bar.write(line, file=sys.stderr) if bar is not None else print(line, file=sys.stderr))

    if bar is not None:
        bar.update(sum(o.task.pixels for o in finished) / 1e6)
    kwargs = dict(model=model, jobs=jobs, overwrite=True, progress=advance if bar is not None else None,
                  runtime=args.runtime)
    if direction == batch.COMPRESS:
        targeted = args.size is not None or args.psnr is not None
        run = batch.compress_files(pending, options=_compress_options(args),
                                   measure_psnr=args.print_psnr or targeted, **kwargs)
    else:
        run = batch.decompress_files(pending, **kwargs)
    try:
        with _own_warnings(verbose):
            outcomes += _show_outcomes(run, args, direction, folder, tasks, failed, say, bar, len(finished))
    finally:
        if bar is not None:
            bar.close()
    if folder:
        print(_summary(direction, outcomes, failed, skipped, time.perf_counter() - t0), file=sys.stderr)
    if folder:
        for outcome in failed:
            print(f"{PROG}: error: {outcome.task.source}: {outcome.error}", file=sys.stderr)
    return 1 if failed else 0


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} bytes"


def _show_outcomes(run, args, direction: str, folder: bool, tasks, failed, say, bar, kept: int) -> list:
    """Collects the outcomes, printing warnings, errors (listing a file) and per-file lines as they come.

    ``kept`` files were already complete, so the bar's file count starts there.
    """
    outcomes = []
    for outcome in (run if folder else _in_order(run, tasks)):
        outcomes.append(outcome)
        source = _label(str(outcome.task.source))
        for text in outcome.warnings:
            say(f"{PROG}: warning: {text if Path(source).name in text else f'{source}: {text}'}")
        if outcome.status == "failed":
            if args.verbose and outcome.traceback:
                say(outcome.traceback.rstrip())
            if not folder:
                say(f"{PROG}: error: {source}: {outcome.error}")
            failed.append(outcome)
        elif not folder and not args.quiet:
            say(f"{source} -> {outcome.task.target}: {_outcome_line(outcome, direction)}")
        if bar is not None:
            bar.set_postfix_str(f"{kept + len(outcomes)}/{len(tasks)} files", refresh=False)
    return outcomes


def _in_order(run, tasks):
    """The outcomes in the order the files were named: parallel workers finish in any order."""
    position = {(task.source, task.target): i for i, task in enumerate(tasks)}
    held, next_index = {}, 0
    for outcome in run:
        held[position[outcome.task.source, outcome.task.target]] = outcome
        while next_index in held:
            yield held.pop(next_index)
            next_index += 1
    yield from (held[i] for i in sorted(held))


def _outcome_line(outcome, direction: str) -> str:
    if direction == "compress":
        line = _compress_line(outcome.width, outcome.height, outcome.mode, outcome.coding, outcome.out_bytes)
        if outcome.psnr is None:
            return line
        return f"{line}, exact" if outcome.psnr == float("inf") else f"{line}, {outcome.psnr:.2f} dB"
    return f"{outcome.width}x{outcome.height} {outcome.mode}"


def _summary(direction: str, outcomes, failed, skipped, seconds: float) -> str:
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
        line += f"; {_size(bytes_in)} -> {_size(bytes_out)}, {8 * coded / pixels:.3f} bpp"
        measured = [o.psnr for o in done if o.psnr is not None and o.psnr != float("inf")]
        if measured:
            line += f", mean PSNR {sum(measured) / len(measured):.2f} dB"
        exact = sum(o.psnr == float("inf") for o in done)
        if exact:
            line += f", {exact} exact (lossless)"
        line += f"; {seconds:.1f} s, {pixels / 1e6 / max(seconds, 1e-9):.2f} MP/s"
    return line


def cmd_compress(args) -> int:
    return _code(args, "compress")


def cmd_decompress(args) -> int:
    return _code(args, "decompress")


def cmd_info(args) -> int:
    import bitstream

    if args.inputs.count(STDIO) > 1:
        raise CLIError("'-' (standard input) can be given only once")
    status = 0
    for inp in args.inputs:
        try:
            data = _read_input(inp)
            h, payload, _ = bitstream.unpack(data, max_pixels=None)
            size = f"{len(data)} bytes, {_bpp(len(data), h.width, h.height):.4f} bpp"
            if h.kind == "lossless":
                from vqcodec.lossless import payload_format

                print(f"{_label(inp)}: {h.width}x{h.height} {h.mode}, lossless ({payload_format(payload)}), {size}")
                continue
            tiles = "untiled" if h.tile_size == 0 else f"tiles of {h.tile_size}x{h.tile_size} latents"
            print(
                f"{_label(inp)}: {h.width}x{h.height} {h.mode}, {h.kind}, level {h.quality}, "
                f"model {h.model_fingerprint.hex()}, {size}, "
                f"latent grid {h.latent_width}x{h.latent_height}, {tiles}"
            )
        except Exception as exc:
            _report(exc, args.verbose, _label(inp))
            status = 1
    return status


def cmd_export(args) -> int:
    """Writes MODEL.encode.onnx and MODEL.decode.onnx beside each model."""
    status = 0
    for model in args.models:
        try:
            _check_model(model)
            with _backend_quiet(args.verbose):
                _start_backend()
                from vqcodec.export import export_model

            with _own_warnings(args.verbose), _backend_quiet(args.verbose):
                paths = export_model(_model_path(model)[0])
            if not args.quiet:
                sizes = ", ".join(f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in paths)
                print(f"{model} -> {sizes}", file=sys.stderr)
        except Exception as exc:
            _report(exc, args.verbose, model)
            status = 1
    return status


def cmd_demo(args) -> int:
    _check_model(args.model)
    _check_quality(args.quality)
    if args.save is not None:
        _check_output_folder(args.save, "--save", "")
    with _own_warnings(args.verbose):
        return _demo(args)


def _demo(args) -> int:
    import time
    from importlib.resources import files

    import numpy as np

    model = _load_model(args)

    from vqcodec import codec
    from vqcodec.metrics import psnr

    sample = files("vqcodec") / "samples" / "endeavour.png"
    with sample.open("rb") as f:
        raw = f.read()
    img = codec.load_image(raw)
    qualities = codec.quality_levels(model)
    n = len(qualities)
    default = level_of(DEFAULT_QUALITY, n)
    if args.quality is not None:
        qualities = [args.quality]
    ref = np.asarray(img.convert("RGB"), dtype=np.float64)
    fp = codec.model_fingerprint(model).hex()
    name = "default model" if args.model is None else args.model
    print(f"sample: endeavour.png, {img.width}x{img.height} {img.mode}, {len(raw)} bytes as PNG")
    print(f"model: {name} (fingerprint {fp}), {n} levels")
    print(f"{'quality':>7} {'level':>5} {'bytes':>8} {'bpp':>7} {'PSNR dB':>8} {'enc s':>6} {'dec s':>6}")
    for q in qualities:
        t0 = time.perf_counter()
        data = codec.compress(img, quality=q, model=model)
        t1 = time.perf_counter()
        out = codec.decompress(data, model=model)
        t2 = time.perf_counter()
        psnr_db = psnr(ref, np.asarray(out.convert("RGB")))
        level = level_of(q, n)
        mark = "  (default)" if level == default else ""
        print(
            f"{q:>7} {level:>5} {len(data):>8} {_bpp(len(data), img.width, img.height):>7.3f} {psnr_db:>8.2f} "
            f"{t1 - t0:>6.2f} {t2 - t1:>6.2f}{mark}"
        )
        if args.save is not None:
            target = Path(args.save)
            target.mkdir(parents=True, exist_ok=True)
            (target / f"endeavour_q{q}.vqc").write_bytes(data)
            out.save(target / f"endeavour_q{q}.png")
    return 0


# -- parser -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from vqcodec import __version__

    # Global options, accepted before and after the command: the command's copy
    # has no default of its own, so it only overrides when given there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="vqcodec: a learned image codec (VQ-VAE). Compress images to .vqc files and back.",
        epilog="Run 'vqcodec COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", default=False, help="show tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", default=False, help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def model_option(p):
        p.add_argument(
            "--model", metavar="PATH", default=None, help="model file (.keras); default: the model shipped with vqcodec"
        )

    def file_options(p):
        p.add_argument(
            "-o", "--output", metavar="OUT", default=None,
            help="output file ('-' = stdout) for one input file; the output folder for a folder input",
        )
        p.add_argument(
            "-f", "--force", action="store_true",
            help="overwrite existing output files (a folder run otherwise keeps the outputs an earlier run finished)",
        )
        p.add_argument(
            "-j", "--jobs", type=int, default=None, metavar="N",
            help="worker processes for several files (default: one per CPU core, as free memory allows)",
        )
        p.add_argument(
            "--runtime", choices=("auto", "onnx", "keras"), default="auto",
            help="run the model with onnxruntime (its export beside the .keras file) or Keras; "
            "default: onnxruntime when the export exists",
        )
        model_option(p)

    p = sub.add_parser(
        "compress",
        parents=[common],
        help="compress images to .vqc",
        description="Compress images (any format Pillow reads) to .vqc files. "
        "IN.png is written to IN.vqc unless -o is given; '-' reads stdin and writes stdout. "
        "A folder is compressed recursively into the folder -o names, mirroring its tree; "
        "running the same command again finishes what an interrupted run left.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="input image(s), a folder, or '-' for stdin")
    p.add_argument(
        "-q", "--quality", type=int, default=None, metavar="Q",
        help=f"quality 0..{MAX_QUALITY}, higher is better (default {DEFAULT_QUALITY}); "
        "it picks one of the model's levels: N equal bands of the scale",
    )
    p.add_argument("--size", type=_byte_size, default=None, metavar="SIZE",
                   help="target file size (e.g. 40000, 40k, 1.5M): the best quality whose file fits")
    p.add_argument("--psnr", type=float, default=None, metavar="DB",
                   help="target PSNR in dB: the smallest file that reaches it")
    p.add_argument("--strict", action="store_true",
                   help="with --size/--psnr: fail (exit 1, nothing written) when the target cannot be met")
    p.add_argument("--lossless", action="store_true", help="store the pixels losslessly (exact), whatever is smaller")
    p.add_argument("--print-psnr", action="store_true", help="also decode each file and report its PSNR")
    file_options(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser(
        "decompress",
        parents=[common],
        help="decompress .vqc files to images",
        description="Decompress .vqc files. IN.vqc is written to IN.png unless -o is given; the format "
        "follows the output suffix (any format Pillow writes). '-' reads stdin and writes PNG to stdout. "
        "A folder's .vqc files are decoded recursively to PNG in the folder -o names, mirroring its tree.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN.vqc", help="input .vqc file(s), a folder, or '-' for stdin")
    file_options(p)
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser(
        "info",
        parents=[common],
        help="print the header of .vqc files (no model needed)",
        description="Print size, mode, quality, model fingerprint, bytes and bits per pixel of .vqc "
        "files, after checking their structure and checksum. Does not load the model.",
    )
    p.add_argument("inputs", nargs="+", metavar="FILE.vqc", help="input .vqc file(s), '-' for stdin")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "export",
        parents=[common],
        help="export models for the fast runtime (onnxruntime)",
        description="Write MODEL.encode.onnx and MODEL.decode.onnx beside MODEL.keras: the model's "
        "encode_to_indices and decode_from_indices traced to ONNX, with its fingerprint and coding tables. "
        "compress and decompress then run without Keras or TensorFlow. Needs the TensorFlow backend.",
    )
    p.add_argument("models", nargs="+", metavar="MODEL.keras", help="model file(s)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="compress and decompress the bundled sample photo",
        description="Compress and decompress the sample photo shipped with vqcodec at every level "
        "of the model (the lowest quality of each) and print bytes, bits per pixel and PSNR.",
    )
    p.add_argument("-q", "--quality", type=int, default=None, metavar="Q", help="only this quality (0..100)")
    p.add_argument("--save", metavar="DIR", default=None, help="also write the .vqc files and decoded PNGs to DIR")
    model_option(p)
    p.set_defaults(func=cmd_demo)

    sub.add_parser(
        "train",
        parents=[common],
        help="train a model (see 'vqcodec train --help')",
        description="Train a codec model; options are those of vqcodec.train.",
        add_help=False,
    )
    return parser


def _first_command(argv: list[str]) -> int | None:
    for i, a in enumerate(argv):
        if a in GLOBAL_FLAGS:
            continue
        return i if not a.startswith("-") else None
    return None


def _train(argv: list[str], verbose: bool, quiet: bool) -> int:
    verbose = verbose or bool({"-v", "--verbose"} & set(argv))
    try:
        with _backend_quiet(verbose):
            from vqcodec.train import main as train_main

            _start_backend()
    except ImportError as exc:
        if verbose:
            raise
        _error(f"training is not available: {exc}")
        return 1
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    if quiet and "--quiet" not in argv:
        argv.append("--quiet")
    with _own_warnings(verbose):
        result = train_main(argv)
    return int(result or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool({"-v", "--verbose"} & set(argv))
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") == "2" and not verbose:
        # vqcodec's default hides TF's info/warnings; on the command line hide its
        # errors too (e.g. "failed call to cuInit" on machines without a GPU).
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    i = _first_command(argv)
    if i is not None and argv[i] == "train":
        head = set(argv[:i])
        return _train(argv[i + 1 :], verbose=bool({"-v", "--verbose"} & head), quiet="--quiet" in head)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        _report(exc, args.verbose)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
