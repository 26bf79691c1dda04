"""``vqcodec``: the entry point. Start-up is cheap: arguments are checked with the standard library, numpy and
Pillow loaded; ``info`` needs only ``bitstream``, compress and decompress onnxruntime, and Keras loads only for
training, export and ``--runtime keras``."""

from __future__ import annotations

import os
import sys

from vqcodec.cli.checks import UsageError
from vqcodec.cli.console import error, report
from vqcodec.cli.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool({"-v", "--verbose"} & set(argv))
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") == "2" and not verbose:
        # vqcodec's default hides TF's info/warnings; on the command line hide its
        # errors too (e.g. "failed call to cuInit" on machines without a GPU).
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    args.argv = argv  # as given: a page records the command that made it
    if unknown:  # reported by the command they were given to, with its usage one --help away
        parser.commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except UsageError as exc:
        report(exc, args.verbose)
        return 2
    except Exception as exc:
        report(exc, args.verbose)
        return 1
