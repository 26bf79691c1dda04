"""The commands: compress, decompress (files, folders, standard streams), info, export, demo."""

from __future__ import annotations

import sys
from pathlib import Path

from vqcodec.cli.checks import (
    PROG,
    STDIO, CLIError, UsageError, check_input, check_model, check_output, check_output_folder, check_quality,
    check_targets, folder_input, label, model_path, output_format, plan_pairs, read_input, write_output,
)
from vqcodec.cli.console import (
    backend_quiet, compress_line, describe, in_order, outcome_line, own_warnings, progress_bar, report, start_backend,
    summary,
)
from vqcodec.metrics import bpp
from vqcodec.quality import DEFAULT_QUALITY, level_of


def run_files(pairs, args, prepare, process) -> int:
    """Checks the model and every pair cheaply first, then processes the good ones; one error line per failure."""
    verbose = args.verbose
    try:
        check_model(args.model)
        check_quality(getattr(args, "quality", None))
    except Exception as exc:
        report(exc, verbose)
        return 1
    status = 0
    ready = []
    for inp, out in pairs:
        try:
            check_input(inp)
            check_output(out, inp, args.force)
            ready.append((inp, out))
        except Exception as exc:
            report(exc, verbose, label(inp))
            status = 1
    if not ready:
        return status
    try:
        with own_warnings(verbose):
            state = prepare()
    except Exception as exc:
        report(exc, verbose)
        return 1
    for inp, out in ready:
        try:
            with own_warnings(verbose, label(inp)):
                process(state, inp, out)
        except Exception as exc:
            report(exc, verbose, label(inp))
            status = 1
    return status


def load_model(args):
    """The model: its exported graphs through onnxruntime when they exist (no Keras import), else Keras."""
    from vqcodec import codec
    from vqcodec.runtime.onnx_model import has_export

    path, shown = model_path(args.model)
    runtime = getattr(args, "runtime", "auto")
    if runtime == "onnx" or (runtime == "auto" and has_export(path)):
        return codec.load_model(path, runtime="onnx")
    if runtime == "auto" and not args.quiet and sys.stderr.isatty():
        print(f"{PROG}: notice: {shown} has no export, so it runs through Keras (seconds slower to start); "
              f"'vqcodec export {shown}' makes one", file=sys.stderr)
    with backend_quiet(args.verbose):
        start_backend()
        return codec.load_model(path, runtime="keras")


def compress_one(model, inp: str, out: str, args) -> None:
    """Standard input or output: one image, coded in this process."""
    from vqcodec import codec

    data = codec.compress(read_input(inp), model=model, **compress_options(args))
    write_output(out, lambda f: f.write(data), args.force)
    if out != STDIO and not args.quiet:
        import bitstream

        h = bitstream.read_header(data)
        line = compress_line(h.width, h.height, h.mode, codec.describe_coding(data), len(data))
        print(f"{label(inp)} -> {out}: {line}", file=sys.stderr)


def compress_options(args) -> dict:
    """codec.compress keyword arguments from the command line."""
    return dict(quality=args.quality, size=args.size, psnr=args.psnr, strict=args.strict,
                lossless=True if args.lossless else None, max_pixels=args.max_pixels)


def decompress_one(model, inp: str, out: str, args) -> None:
    """Standard input or output: one file, decoded in this process."""
    from vqcodec import codec
    from vqcodec.codec import batch

    img = codec.decompress(read_input(inp), model=model, max_pixels=args.max_pixels)
    write_output(out, batch.image_writer(img, output_format(out), args.output_quality), args.force)
    if out != STDIO and not args.quiet:
        print(f"{label(inp)} -> {out}: {img.width}x{img.height} {img.mode}", file=sys.stderr)


def code(args, direction: str) -> int:
    """compress / decompress: standard streams in this process, files and folders through vqcodec.codec.batch."""
    from vqcodec.codec import batch

    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1, got {args.max_pixels}")
    if direction == batch.COMPRESS:
        check_targets(args)
    else:
        check_quality(args.output_quality, "--output-quality")
    check_quality(getattr(args, "quality", None))
    if args.cluster is not None:
        return code_on_cluster(args, direction)
    folder = folder_input(args)
    check_model(args.model)
    check_quality(getattr(args, "quality", None))
    if folder is not None:
        plan = batch.plan_folder(folder, args.output, direction)
        return run_batch(args, direction, plan.tasks, plan.failed, plan.skipped, folder=True)

    suffix = ".vqc" if direction == batch.COMPRESS else ".png"
    pairs = plan_pairs(args, suffix)
    if direction == batch.DECOMPRESS:
        for _, out in pairs:  # fail fast on an unknown output format
            output_format(out)
    if any(STDIO in pair for pair in pairs):
        one = compress_one if direction == batch.COMPRESS else decompress_one
        return run_files(pairs, args, lambda: load_model(args), lambda model, i, o: one(model, i, o, args))
    tasks, failed = [], []
    for inp, out in pairs:
        try:
            check_input(inp)
            check_output(out, inp, args.force)
            tasks.append(batch.Task(Path(inp), Path(out), batch.pixels_of(Path(inp), direction)))
        except Exception as exc:
            report(exc, args.verbose, label(inp))
            failed.append(batch.Outcome(batch.Task(Path(inp), Path(out)), "failed", describe(exc)))
    return run_batch(args, direction, tasks, failed, [], folder=False)


def code_on_cluster(args, direction: str) -> int:
    """A folder or URL tree coded on a Dask cluster: the folder mode's plan, summary and exit codes."""
    from vqcodec.codec import cluster
    from vqcodec.extras import require

    if len(args.inputs) != 1 or args.output is None:
        raise UsageError("--cluster codes one folder or URL into another: SRC -o DST")
    if args.jobs is not None:
        raise UsageError("--jobs has no effect with --cluster: the cluster's workers do the work")
    if args.cluster.startswith(cluster.LOCAL_PREFIX):
        count = args.cluster[len(cluster.LOCAL_PREFIX):]
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"--cluster local:N needs a number of workers N >= 1, got {args.cluster!r}")
    src, dst = args.inputs[0], args.output
    if not cluster.is_url(src) and not Path(src).is_dir():
        raise CLIError(f"{src}: not a folder (--cluster codes a folder or a URL)")
    if not cluster.is_url(dst):
        check_output_folder(dst)
    check_model(args.model)
    require("distributed", "dask", "--cluster")
    plan = cluster.plan_tree(src, dst, direction)
    return run_batch(args, direction, plan.tasks, plan.failed, plan.skipped, folder=True)


def run_batch(args, direction: str, tasks, failed, skipped, folder: bool) -> int:
    """Runs the tasks with progress, then prints the summary; one error line per failed file."""
    import time

    from vqcodec.codec import batch

    verbose = args.verbose
    on_cluster = getattr(args, "cluster", None)
    if on_cluster is not None:  # the workers check which outputs are finished, wherever they are
        finished, pending, jobs = [], list(tasks), None
        model = None if args.model is None else str(model_path(args.model)[0])
    else:
        finished, pending = batch.split_finished(tasks, direction, overwrite=args.force or not folder)
        jobs = min(args.jobs or batch.default_jobs(len(pending)), max(1, len(pending)))
        model = args.model
    if pending and on_cluster is None:
        try:
            model = load_model(args) if jobs == 1 else str(model_path(args.model)[0])
        except Exception as exc:
            report(exc, verbose)
            return 1
    bar = progress_bar(tasks, args.quiet)
    outcomes = list(finished)
    t0 = time.perf_counter()

    def advance(pixels: float) -> None:
        bar.update(pixels / 1e6)

    def say(line: str) -> None:
        (bar.write(line, file=sys.stderr) if bar is not None else print(line, file=sys.stderr))

    if bar is not None:
        bar.update(sum(o.task.pixels for o in finished) / 1e6)
    kwargs = dict(model=model, jobs=jobs, overwrite=True if on_cluster is None else args.force,
                  progress=advance if bar is not None else None, runtime=args.runtime, cluster=on_cluster)
    if direction == batch.COMPRESS:
        targeted = args.size is not None or args.psnr is not None
        run = batch.compress_files(pending, options=compress_options(args),
                                   measure_psnr=args.print_psnr or targeted, **kwargs)
    else:
        run = batch.decompress_files(pending, output_quality=args.output_quality, max_pixels=args.max_pixels,
                                     **kwargs)
    try:
        with own_warnings(verbose):
            outcomes += show_outcomes(run, args, direction, folder, tasks, failed, say, bar, len(finished))
    finally:
        if bar is not None:
            bar.close()
    if folder:
        print(summary(direction, outcomes, failed, skipped, time.perf_counter() - t0), file=sys.stderr)
    if folder:
        for outcome in failed:
            print(f"{PROG}: error: {outcome.task.source}: {outcome.error}", file=sys.stderr)
    return 1 if failed else 0


def show_outcomes(run, args, direction: str, folder: bool, tasks, failed, say, bar, kept: int) -> list:
    """Collects the outcomes, printing warnings, errors (listing a file) and per-file lines as they come.

    ``kept`` files were already complete, so the bar's file count starts there.
    """
    outcomes = []
    for outcome in (run if folder else in_order(run, tasks)):
        outcomes.append(outcome)
        source = label(str(outcome.task.source))
        for text in outcome.warnings:
            say(f"{PROG}: warning: {text if Path(source).name in text else f'{source}: {text}'}")
        if outcome.status == "failed":
            if args.verbose and outcome.traceback:
                say(outcome.traceback.rstrip())
            if not folder:
                say(f"{PROG}: error: {source}: {outcome.error}")
            failed.append(outcome)
        elif not folder and not args.quiet:
            say(f"{source} -> {outcome.task.target}: {outcome_line(outcome, direction)}")
        if bar is not None:
            bar.set_postfix_str(f"{kept + len(outcomes)}/{len(tasks)} files", refresh=False)
    return outcomes


def cmd_compress(args) -> int:
    return code(args, "compress")


def cmd_decompress(args) -> int:
    return code(args, "decompress")


def cmd_info(args) -> int:
    import bitstream

    if args.inputs.count(STDIO) > 1:
        raise UsageError("'-' (standard input) can be given only once")
    status = 0
    for inp in args.inputs:
        try:
            data = read_input(inp)
            h, payload, _ = bitstream.unpack(data, max_pixels=None)
            size = f"{len(data)} bytes, {bpp(len(data), h.width, h.height):.4f} bpp"
            if h.kind == "lossless":
                from vqcodec.codec.lossless import payload_format

                print(f"{label(inp)}: {h.width}x{h.height} {h.mode}, lossless ({payload_format(payload)}), {size}")
                continue
            tiles = "untiled" if h.tile_size == 0 else f"tiles of {h.tile_size}x{h.tile_size} latents"
            print(
                f"{label(inp)}: {h.width}x{h.height} {h.mode}, {h.kind}, level {h.quality}"
                f"{f' at {h.coded_width}x{h.coded_height}' if h.resampled else ''}, "
                f"model {h.model_fingerprint.hex()}, {size}, "
                f"latent grid {h.latent_width}x{h.latent_height}, {tiles}"
            )
        except Exception as exc:
            report(exc, args.verbose, label(inp))
            status = 1
    return status


def cmd_export(args) -> int:
    """Writes MODEL.encode.onnx and MODEL.decode.onnx beside each model."""
    status = 0
    for model in args.models:
        try:
            check_model(model, option="")
            with backend_quiet(args.verbose):
                start_backend()
                from vqcodec.runtime.export import export_model

            with own_warnings(args.verbose), backend_quiet(args.verbose):
                paths = export_model(model_path(model, option="")[0])
            if not args.quiet:
                sizes = ", ".join(f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in paths)
                print(f"{model} -> {sizes}", file=sys.stderr)
        except Exception as exc:
            report(exc, args.verbose, model)
            status = 1
    return status


def cmd_demo(args) -> int:
    check_model(args.model)
    check_quality(args.quality)
    if args.save is not None:
        check_output_folder(args.save, "--save", "")
    with own_warnings(args.verbose):
        return demo(args)


def demo(args) -> int:
    import time
    from importlib.resources import files

    import numpy as np

    model = load_model(args)

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
    print(f"model: {name} (fingerprint {fp}), {n} operating points")
    print(f"{'quality':>7} {'coded as':<22} {'bytes':>8} {'bpp':>7} {'PSNR dB':>8} {'enc s':>6} {'dec s':>6}")
    for q in qualities:
        t0 = time.perf_counter()
        data = codec.compress(img, quality=q, model=model)
        t1 = time.perf_counter()
        out = codec.decompress(data, model=model)
        t2 = time.perf_counter()
        psnr_db = psnr(ref, np.asarray(out.convert("RGB")))
        mark = "  (default)" if level_of(q, n) == default else ""
        print(
            f"{q:>7} {codec.describe_coding(data):<22} {len(data):>8} {bpp(len(data), img.width, img.height):>7.3f} "
            f"{psnr_db:>8.2f} "
            f"{t1 - t0:>6.2f} {t2 - t1:>6.2f}{mark}"
        )
        if args.save is not None:
            target = Path(args.save)
            target.mkdir(parents=True, exist_ok=True)
            (target / f"endeavour_q{q}.vqc").write_bytes(data)
            out.save(target / f"endeavour_q{q}.png")
    return 0
