"""``vqcodec train``: its options, checked before Keras loads, then :func:`vqcodec.train.trainer.train`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vqcodec.cli.checks import CLIError, UsageError, check_output_folder
from vqcodec.cli.console import backend_quiet, own_warnings, start_backend
from vqcodec.model.recipe import SHIPPED

DESCRIPTION = (
    "Train a codec model (a VariableRateVQVAE: every quality level in one run) on a folder of photos, "
    "from scratch with the shipped recipe, from a model's weights (--from default fine-tunes the shipped model), "
    "or resuming a run. Writes OUTPUT (float32 weights with fitted coding tables), OUTPUT.ckpt.keras (with the "
    "optimizer), OUTPUT.state.json, OUTPUT.log.csv and OUTPUT.eval.json (real coded bpp and PSNR per level on the "
    "last --holdout photos). Use the result with 'vqcodec compress --model OUTPUT'."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The train command's options; defaults are the shipped recipe's (:data:`vqcodec.model.recipe.SHIPPED`)."""
    r = SHIPPED
    p.add_argument("data_dir", nargs="?", metavar="DATA", help="folder of training photos; the last --holdout files validate")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.keras", help="the model to write")
    start = p.add_argument_group("where to start (default: a new model of the shipped recipe)")
    start.add_argument("--from", dest="start_from", metavar="MODEL",
                       help="start from this model's weights with a fresh optimizer; 'default': the shipped model")
    start.add_argument("--resume", metavar="PATH",
                       help="go on with a run: OUTPUT.ckpt.keras (with its optimizer) or OUTPUT.keras "
                       "(fresh optimizer at the step in OUTPUT.state.json)")
    budget = p.add_argument_group("budget and schedule")
    budget.add_argument("--steps", type=int, default=r.steps, help=f"schedule length in steps (default {r.steps:,})")
    budget.add_argument("--minutes", type=float, help="stop after this much wall time (at an interval's end)")
    budget.add_argument("--until-step", type=int, help="stop once this step is reached (at an interval's end)")
    budget.add_argument("--lr", type=float, default=r.learning_rate, help=f"peak learning rate (default {r.learning_rate:g})")
    budget.add_argument("--batch-size", type=int, default=r.batch_size, help=f"crops per batch (default {r.batch_size})")
    budget.add_argument("--accumulate", type=int, default=r.accumulate,
                        help=f"batches summed into one step (default {r.accumulate}: {r.batch_size * r.accumulate} crops a step)")
    budget.add_argument("--patch-size", type=int, default=r.patch_size, help=f"crop side in pixels (default {r.patch_size})")
    budget.add_argument("--log-every", type=int, default=250, help="steps per interval: log line, checkpoint (default 250)")
    budget.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"],
                        help="compute precision (mixed_bfloat16 on accelerators that have it; the saved model is float32)")
    budget.add_argument("--seed", type=int, default=0, help="seed of the crops, the levels drawn and new weights (default 0)")
    data = p.add_argument_group("data")
    data.add_argument("--holdout", type=int, default=2, help="validate on the last N photos (default 2)")
    data.add_argument("--patches", metavar="FILE.npz",
                      help="train from pre-cut patches (python -m vqcodec.train.data cut) instead of DATA; no evaluation")
    model = p.add_argument_group("the model (a new one: the recipe's values; a started one: changes its own)")
    model.add_argument("--codes", type=int, help=f"codes per channel (recipe: {r.num_embeddings}; may only grow)")
    model.add_argument("--code-dim", type=int, help=f"channels per code (new model only; recipe: {r.code_dim})")
    model.add_argument("--lambdas", type=float, nargs="+", metavar="L", help="the quality levels' rate-distortion lambdas")
    model.add_argument("--rate-weight", type=float, help=f"price of a bit in the code choice (recipe: {r.rate_weight})")
    model.add_argument("--level-weight-power", type=float,
                       help="weight level q's loss by (lambda_q / geometric mean) ** -POWER (recipe: 0)")
    model.add_argument("--gain-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help=f"range of the quantiser's gains (new model only; recipe: {r.gain_range[0]:g} {r.gain_range[1]:g})")
    model.add_argument("--learn-codebooks", action="store_true", default=None,
                       help="learn the codebooks instead of keeping the integer lattice (new model only)")
    how = p.add_argument_group("how it trains")
    how.add_argument("--freeze", nargs="+", choices=["encoder", "decoder"], default=[],
                     help="keep these transforms fixed (fresh optimizer only); the quantiser always trains")
    how.add_argument("--coder-rate", action=argparse.BooleanOptionalAction,
                     help="price the codes with the entropy coder's tables in their contexts (fixed lattice only)")
    how.add_argument("--table-refit-every", type=int, default=1, metavar="N",
                     help="with --coder-rate: refit the coding tables after every N intervals")
    how.add_argument("--revive-every", type=int, default=50, metavar="N", help="revive dead codes every N steps")
    how.add_argument("--refit-codes", action=argparse.BooleanOptionalAction, default=True,
                     help="refit the code distributions to the chosen codes at the start and after every interval")
    ev = p.add_argument_group("evaluation only (no training)")
    ev.add_argument("--evaluate-only", action="store_true",
                    help="evaluate OUTPUT on the validation photos (fitting its coding tables if it has none)")
    ev.add_argument("--evaluate-on", metavar="DIR", help="evaluate OUTPUT on every image of DIR (whole .vqc files)")


def _check(args: argparse.Namespace) -> None:
    """Every argument and path, before Keras loads; raises :class:`CLIError` with one line."""
    from vqcodec.train.photos import find_images

    if (args.data_dir is None) == (args.patches is None):
        raise UsageError("give a data folder or --patches FILE.npz (one of them)")
    if args.start_from and args.resume:
        raise UsageError("give --from or --resume, not both")
    evaluating = args.evaluate_only or args.evaluate_on
    if args.patches and evaluating:
        raise UsageError("evaluation needs the data folder (its last --holdout photos), not --patches")
    for name in ("steps", "batch_size", "accumulate", "patch_size", "log_every", "revive_every", "table_refit_every"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.patch_size % 8:
        raise UsageError(f"--patch-size must be a multiple of 8, got {args.patch_size}")
    if args.holdout < 0:
        raise UsageError(f"--holdout must be 0 or more, got {args.holdout}")
    if args.data_dir is not None:
        folder = Path(args.data_dir)
        if not folder.is_dir():
            raise CLIError(f"{args.data_dir}: {'no such folder' if not folder.exists() else 'not a folder'}")
        try:
            count = len(find_images(folder))
        except FileNotFoundError:
            raise CLIError(f"{args.data_dir}: no images in this folder") from None
        if count <= args.holdout:
            raise CLIError(f"{args.data_dir}: {count} photos, and --holdout keeps {args.holdout} for validation; "
                           "add photos or lower --holdout")
    for option, value in (("--patches", args.patches), ("--resume", args.resume), ("--evaluate-on", args.evaluate_on)):
        if value is not None and not Path(value).exists():
            raise CLIError(f"{option} {value}: no such {'folder' if option == '--evaluate-on' else 'file'}")
    if args.start_from == "default":
        from vqcodec.codec.loading import default_model_path

        args.start_from = str(default_model_path())
    elif args.start_from is not None and not Path(args.start_from).is_file():
        raise CLIError(f"--from {args.start_from}: no such file (give a .keras model or 'default')")
    output = Path(args.output)
    if output.suffix != ".keras":
        raise CLIError(f"-o {args.output}: a model file ends in .keras")
    if evaluating and not output.is_file():
        raise CLIError(f"-o {args.output}: no such model to evaluate")
    check_output_folder(str(output.parent), "-o", "")


def cmd_train(args: argparse.Namespace) -> int:
    _check(args)
    with backend_quiet(args.verbose):
        start_backend("vqcodec train")
        from vqcodec.train.trainer import train

    with own_warnings(args.verbose):
        try:
            return train(args, ["vqcodec"] + sys.argv[1:])
        except ValueError as exc:
            raise CLIError(str(exc).splitlines()[0]) from exc
