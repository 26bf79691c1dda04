"""The ``vqcodec`` command line: compress, decompress, info, demo, train.

Start-up is kept cheap: this module imports only the standard library at the
top; ``info`` needs only the ``bitstream`` package, and Keras/TensorFlow are
imported when a model is actually needed (compress, decompress, demo).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

PROG = "vqcodec"
STDIO = "-"


class CLIError(Exception):
    """An error whose message is shown as is (one line, no traceback)."""


# -- helpers ------------------------------------------------------------------------


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _describe(exc: BaseException) -> str:
    """One line describing ``exc`` for the user."""
    if isinstance(exc, CLIError):
        return str(exc)
    if isinstance(exc, IsADirectoryError):
        return f"{exc.filename}: is a directory"
    if isinstance(exc, FileNotFoundError):
        if exc.filename is not None:
            return f"{exc.filename}: no such file or directory"
        return str(exc)
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied" if exc.filename else "permission denied"
    pil_image = sys.modules.get("PIL.Image")
    if pil_image is not None and isinstance(exc, pil_image.UnidentifiedImageError):
        return "not an image file that Pillow can read"
    if pil_image is not None and isinstance(exc, pil_image.DecompressionBombError):
        return str(exc)
    bitstream = sys.modules.get("bitstream")
    if bitstream is not None and isinstance(exc, bitstream.FormatError):
        return str(exc)
    if isinstance(exc, (ValueError, OSError, TypeError)):
        text = str(exc).strip() or type(exc).__name__
        return text.splitlines()[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_output(out: str, write, force: bool) -> None:
    """Write via ``write(fileobj)`` to ``out``: atomically (temp file + rename), or to stdout."""
    if out == STDIO:
        write(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    p = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if p.exists() and not force:
            raise CLIError(f"output file {out} exists (use --force to overwrite)")
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _plan(args, default_suffix: str) -> list[tuple[str, str]]:
    """(input, output) pairs; raises CLIError for a bad combination of arguments."""
    inputs = args.inputs
    if args.output is not None and len(inputs) > 1:
        raise CLIError("-o/--output can only be used with a single input file")
    if inputs.count(STDIO) > 1:
        raise CLIError("'-' (standard input) can be given only once")
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


def _run_files(pairs, force, verbose, prepare, process) -> int:
    """Check every pair cheaply first, then process the good ones; one error line per failure."""
    status = 0
    ready = []
    for inp, out in pairs:
        try:
            _check_input(inp)
            _check_output(out, inp, force)
            ready.append((inp, out))
        except Exception as exc:
            _report(exc, verbose, _label(inp))
            status = 1
    if not ready:
        return status
    try:
        state = prepare()
    except Exception as exc:
        _report(exc, verbose)
        return 1
    for inp, out in ready:
        try:
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
    from vqcodec import codec
    from vqcodec.metrics import psnr

    return codec.load_model(args.model)


def cmd_compress(args) -> int:
    def process(model, inp, out):
        from vqcodec import codec

        source = _read_input(inp) if inp == STDIO else inp
        data = codec.compress(source, quality=args.quality, model=model)
        _write_output(out, lambda f: f.write(data), args.force)
        if out != STDIO and not args.quiet:
            import bitstream

            h = bitstream.read_header(data)
            print(
                f"{_label(inp)} -> {out}: {h.width}x{h.height} {h.mode}, quality {h.num_stages}, "
                f"{len(data)} bytes, {_bpp(len(data), h.width, h.height):.3f} bpp",
                file=sys.stderr,
            )

    return _run_files(_plan(args, ".vqc"), args.force, args.verbose, lambda: _load_model(args), process)


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


def cmd_decompress(args) -> int:
    pairs = _plan(args, ".png")
    for _, out in pairs:  # fail fast on an unknown output format
        _output_format(out)

    def process(model, inp, out):
        from vqcodec import codec

        img = codec.decompress(_read_input(inp), model=model)
        fmt = _output_format(out)

        def write(f):
            try:
                img.save(f, format=fmt)
            except (OSError, ValueError, KeyError) as exc:
                raise CLIError(
                    f"cannot write a {img.mode} image as {fmt}: {_describe(exc)} "
                    "(choose another output format, e.g. .png)"
                ) from exc

        _write_output(out, write, args.force)
        if out != STDIO and not args.quiet:
            print(f"{_label(inp)} -> {out}: {img.width}x{img.height} {img.mode}", file=sys.stderr)

    return _run_files(pairs, args.force, args.verbose, lambda: _load_model(args), process)


def cmd_info(args) -> int:
    import bitstream

    if args.inputs.count(STDIO) > 1:
        raise CLIError("'-' (standard input) can be given only once")
    status = 0
    for inp in args.inputs:
        try:
            data = _read_input(inp)
            h, _, _ = bitstream.unpack(data, max_pixels=None)
            tiles = "untiled" if h.tile_size == 0 else f"tiles of {h.tile_size}x{h.tile_size} latents"
            print(
                f"{_label(inp)}: {h.width}x{h.height} {h.mode}, quality {h.num_stages}, "
                f"model {h.model_fingerprint.hex()}, {len(data)} bytes, "
                f"{_bpp(len(data), h.width, h.height):.4f} bpp, "
                f"latent grid {h.latent_width}x{h.latent_height}, {tiles}"
            )
        except Exception as exc:
            _report(exc, args.verbose, _label(inp))
            status = 1
    return status


def cmd_demo(args) -> int:
    import time
    from importlib.resources import files

    import numpy as np

    from vqcodec import codec
    from vqcodec.metrics import psnr

    sample = files("vqcodec") / "samples" / "endeavour.png"
    with sample.open("rb") as f:
        raw = f.read()
    img = codec.load_image(raw)
    model = codec.load_model(args.model)
    levels = codec.quality_levels(model)
    default = codec.default_quality(model)
    if args.quality is not None:
        if args.quality not in levels:
            raise CLIError(f"quality must be in 1..{levels[-1]} for this model, got {args.quality}")
        levels = [args.quality]
    ref = np.asarray(img.convert("RGB"), dtype=np.float64)
    fp = codec.model_fingerprint(model).hex()
    name = "default model" if args.model is None else args.model
    print(f"sample: endeavour.png, {img.width}x{img.height} {img.mode}, {len(raw)} bytes as PNG")
    print(f"model: {name} (fingerprint {fp}), quality levels 1..{len(codec.quality_levels(model))}")
    print(f"{'quality':>7} {'bytes':>8} {'bpp':>7} {'PSNR dB':>8} {'enc s':>6} {'dec s':>6}")
    for q in levels:
        t0 = time.perf_counter()
        data = codec.compress(img, quality=q, model=model)
        t1 = time.perf_counter()
        out = codec.decompress(data, model=model)
        t2 = time.perf_counter()
        psnr_db = psnr(ref, np.asarray(out.convert("RGB")))
        mark = "  (default)" if q == default else ""
        print(
            f"{q:>7} {len(data):>8} {_bpp(len(data), img.width, img.height):>7.3f} {psnr_db:>8.2f} "
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

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="vqcodec: a learned image codec (residual VQ-VAE). Compress images to .vqc files and back.",
        epilog="Run 'vqcodec COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", default=False, help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def model_option(p):
        p.add_argument(
            "--model", metavar="PATH", default=None, help="model file (.keras); default: the model shipped with vqcodec"
        )

    def file_options(p):
        p.add_argument("-o", "--output", metavar="OUT", default=None, help="output file ('-' = stdout); only with one input")
        p.add_argument("-f", "--force", action="store_true", help="overwrite existing output files")
        p.add_argument("--quiet", action="store_true", help="do not print a summary line per file")
        model_option(p)

    p = sub.add_parser(
        "compress",
        parents=[common],
        help="compress images to .vqc",
        description="Compress images (any format Pillow reads) to .vqc files. "
        "IN.png is written to IN.vqc unless -o is given; '-' reads stdin and writes stdout.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="input image(s), '-' for stdin")
    p.add_argument(
        "-q", "--quality", type=int, default=None, metavar="Q",
        help="quality level 1..N (the number of quantiser stages; default 4, or N if smaller)",
    )
    file_options(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser(
        "decompress",
        parents=[common],
        help="decompress .vqc files to images",
        description="Decompress .vqc files. IN.vqc is written to IN.png unless -o is given; the format "
        "follows the output suffix (any format Pillow writes). '-' reads stdin and writes PNG to stdout.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN.vqc", help="input .vqc file(s), '-' for stdin")
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
        "demo",
        parents=[common],
        help="compress and decompress the bundled sample photo",
        description="Compress and decompress the sample photo shipped with vqcodec at every quality "
        "level and print bytes, bits per pixel and PSNR.",
    )
    p.add_argument("-q", "--quality", type=int, default=None, metavar="Q", help="only this quality level")
    p.add_argument("--save", metavar="DIR", default=None, help="also write the .vqc files and decoded PNGs to DIR")
    model_option(p)
    p.set_defaults(func=cmd_demo)

    sub.add_parser(
        "train",
        help="train a model (see 'vqcodec train --help')",
        description="Train a codec model; options are those of vqcodec.train.",
        add_help=False,
    )
    return parser


def _first_command(argv: list[str]) -> int | None:
    for i, a in enumerate(argv):
        if a in ("-v", "--verbose"):
            continue
        return i if not a.startswith("-") else None
    return None


def _train(argv: list[str], verbose: bool) -> int:
    try:
        from vqcodec.train import main as train_main
    except ImportError as exc:
        if verbose:
            raise
        _error(f"training is not available: {exc}")
        return 1
    result = train_main(argv)
    return int(result or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "2" and not {"-v", "--verbose"} & set(argv):
        # vqcodec's default hides TF's info/warnings; on the command line hide its
        # start-up errors too (e.g. "failed call to cuInit" on machines without a GPU).
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    i = _first_command(argv)
    if i is not None and argv[i] == "train":
        return _train(argv[i + 1 :], verbose=bool({"-v", "--verbose"} & set(argv[:i])))
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
