"""The command line's parser: commands, options and help (the train command's own in :mod:`vqcodec.cli.train`)."""

from __future__ import annotations

import argparse

from bitstream import DEFAULT_MAX_PIXELS
from vqcodec.cli import compare, train
from vqcodec.cli.checks import PROG, byte_size
from vqcodec.cli.commands import cmd_compress, cmd_decompress, cmd_demo, cmd_export, cmd_info
from vqcodec.quality import DEFAULT_QUALITY, MAX_QUALITY

QUIET_HELP = "no summary line per file (compress, decompress) and no progress display (train)"


class Parser(argparse.ArgumentParser):
    """A usage error in one line, ``vqcodec: error: COMMAND: ...``, naming the ``--help`` that shows the usage;
    exit status 2."""

    def error(self, message: str):
        command = self.prog.removeprefix(PROG).strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"{PROG}: error: {where}{message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from vqcodec import __version__

    # Global options, accepted before and after the command: the command's copy
    # has no default of its own, so it only overrides when given there.
    common = Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    parser = Parser(
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
            "--cluster", default=None, metavar="ADDRESS",
            help="code a folder (or an fsspec URL such as s3://bucket/photos, into -o DIR or URL) on a Dask cluster: "
            "a scheduler address (tcp://host:8786) or local:N (N worker processes here); needs vqcodec[dask]",
        )
        p.add_argument(
            "--max-pixels", type=int, default=None, metavar="N",
            help=f"largest image, in pixels, to read or write (default {DEFAULT_MAX_PIXELS}, where Pillow refuses): "
            "a larger one is refused before its pixels are read",
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
        "it picks one of the model's operating points (a level, and the size the image is coded at): "
        "N equal bands of the scale",
    )
    p.add_argument("--size", type=byte_size, default=None, metavar="SIZE",
                   help="target file size (e.g. 40000, 40k, 1.5M): the best quality whose file fits")
    p.add_argument("--psnr", type=float, default=None, metavar="DB",
                   help="target PSNR in dB: the smallest file that reaches it")
    p.add_argument("--strict", action="store_true",
                   help="with --size/--psnr: fail (exit 1, nothing written) when the target cannot be met")
    p.add_argument("--lossless", action="store_true", help="store the pixels losslessly (exact): WebP or PNG, whichever is smaller")
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
    p.add_argument("--output-quality", type=int, default=None, metavar="Q",
                   help="quality 0..100 of JPEG, WebP and AVIF outputs (default 95: the output format adds little loss)")
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
        description="Compress and decompress the sample photo shipped with vqcodec at every operating point "
        "of the model (the lowest quality of each) and print how it was coded, bytes, bits per pixel and PSNR.",
    )
    p.add_argument("-q", "--quality", type=int, default=None, metavar="Q", help="only this quality (0..100)")
    p.add_argument("--save", metavar="DIR", default=None, help="also write the .vqc files and decoded PNGs to DIR")
    model_option(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "compare",
        parents=[common],
        help="show an image coded by vqcodec, WebP, AVIF and JPEG at the same size (an HTML page)",
        description="Code each image with vqcodec (-q, --size or --bpp), then with WebP, AVIF and JPEG at the "
        "largest file not above vqcodec's, and write one self-contained HTML page (images embedded, opens from "
        "disk): every decoded version with its bytes, bpp, PSNR and MS-SSIM, and one crop of all of them that "
        "moves and zooms together. Several images or a folder: one page each and index.html in -o OUTDIR.",
    )
    compare.add_arguments(p)
    p.set_defaults(func=compare.cmd_compare)

    p = sub.add_parser("train", parents=[common], help="train a model on your photos", description=train.DESCRIPTION)
    train.add_arguments(p)
    p.set_defaults(func=train.cmd_train)
    parser.commands = dict(sub.choices)  # the command parsers, which report their own usage errors
    return parser
