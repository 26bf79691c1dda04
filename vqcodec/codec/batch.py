"""Many images through one model: folder plans, a worker pool, tile-level progress, resumable runs.

Why a module of its own: the CLI's folder mode and the Python API share one
engine. Each worker loads the model once and codes whole files; results come
back as small :class:`Outcome` records, so the parent never holds an image.
Outputs are written atomically, and a finished output is recognised on the
next run (a ``.vqc`` by its checksum, an image by Pillow's verify), so a run
that was killed resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from vqcodec.atomic_write import remove_stale_temporaries, write_atomic
from vqcodec.extras import MissingExtraError

__all__ = [
    "Task",
    "Outcome",
    "FolderPlan",
    "plan_folder",
    "compress_files",
    "decompress_files",
    "default_jobs",
    "split_finished",
    "pixels_of",
    "code_source",
    "header_pixels",
    "finished_output",
    "output_format",
    "attempt",
    "image_suffixes",
]

COMPRESS, DECOMPRESS = "compress", "decompress"
VQC_SUFFIX = ".vqc"

ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class Task:
    """One file to code: ``source`` -> ``target``; ``pixels`` weighs it in the progress display."""

    source: Path
    target: Path
    pixels: int = 0


@dataclass
class Outcome:
    """What happened to one :class:`Task`: ``status`` is "done", "exists" (kept from an earlier run) or "failed"."""

    task: Task
    status: str
    error: str | None = None
    in_bytes: int = 0
    out_bytes: int = 0
    width: int = 0
    height: int = 0
    mode: str = ""
    coding: str = ""
    psnr: float | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    traceback: str | None = None


@dataclass
class FolderPlan:
    """The tasks of a folder, plus the files left out and why."""

    tasks: list[Task] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)


#: Peak memory of one worker on a 24-megapixel image, with room to spare (measured: 0.45-0.72 GB
#: with the exported model, 1.35-1.45 GB through Keras).
WORKER_MEMORY = 1.5e9


def _available_memory() -> float | None:
    """Memory the system can give without swapping: MemAvailable counts reclaimable page cache."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def default_jobs(num_files: int, cpus: int | None = None, memory: float | None = None) -> int:
    """Worker processes for ``num_files`` files: one per core (on 2 cores, two one-thread workers beat
    one two-thread worker by 7% compressing and 15% decompressing Kodak with the exported model), and
    no more than the available memory holds at :data:`WORKER_MEMORY` each, so large images are safe
    by default."""
    cpus = cpus or os.cpu_count() or 1
    memory = _available_memory() if memory is None else memory
    by_memory = int(memory // WORKER_MEMORY) if memory else cpus
    return max(1, min(num_files, cpus, by_memory))


# -- planning -----------------------------------------------------------------------


def image_suffixes() -> set[str]:
    """The suffixes of the image formats Pillow opens (not .vqc)."""
    Image.init()
    return {s for s, fmt in Image.registered_extensions().items() if fmt in Image.OPEN} - {VQC_SUFFIX}


def _walk(root: Path, exclude: Path | None) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if exclude is None or (here / d).resolve() != exclude)
        for name in sorted(names):
            yield here / name


def header_pixels(f, direction: str) -> int:
    """The pixels the input open as binary file ``f`` will code to, from its header (an image Pillow opens to
    compress, a ``.vqc`` to decompress); raises for anything else."""
    if direction == COMPRESS:
        from vqcodec.codec.images import open_header

        with open_header(f) as img:
            if img.format == "VQC":
                raise ValueError("a .vqc file")
            return img.width * img.height
    import bitstream

    header = bitstream.read_header(f.read(4096))
    return header.width * header.height


def pixels_of(path: Path, direction: str) -> int:
    """The pixels an input will code to, from its header; 0 when it cannot be read (the coding reports why)."""
    try:
        with open(path, "rb") as f:
            return header_pixels(f, direction)
    except Exception:
        return 0


def plan_folder(root: str | os.PathLike, out_root: str | os.PathLike, direction: str, out_suffix: str = ".png") -> FolderPlan:
    """Mirrors ``root`` into ``out_root``: every image Pillow reads (compress) or every ``.vqc`` file (decompress).

    Files that are not for this direction are ``skipped``. A file named like an
    image that Pillow cannot open, or a ``.vqc`` whose header is unreadable, is
    a failure (it was meant to be coded). ``out_root`` is left out of the walk
    when it lies inside ``root``.
    """
    root, out_root = Path(root), Path(out_root)
    exclude = out_root.resolve() if out_root.resolve() != root.resolve() else None
    plan = FolderPlan()
    suffixes = image_suffixes()
    targets: dict[Path, Path] = {}
    for path in _walk(root, exclude):
        suffix = path.suffix.lower()
        relative = path.relative_to(root)
        if direction == COMPRESS:
            if suffix == VQC_SUFFIX:
                plan.skipped.append(path)
                continue
            target = out_root / relative.with_suffix(VQC_SUFFIX)
        else:
            if suffix != VQC_SUFFIX:
                plan.skipped.append(path)
                continue
            target = out_root / relative.with_suffix(out_suffix)
        task = Task(path, target)
        try:
            with open(path, "rb") as f:
                task = Task(path, target, header_pixels(f, direction))
        except Exception as exc:
            if direction == COMPRESS and suffix not in suffixes:
                plan.skipped.append(path)
            else:
                what = "the image" if direction == COMPRESS else "the .vqc header"
                plan.failed.append(Outcome(task, "failed", f"cannot read {what}: {describe(exc)}"))
            continue
        if target in targets:
            plan.failed.append(Outcome(task, "failed", f"its output {target} is also the output of {targets[target]}"))
            continue
        targets[target] = path
        plan.tasks.append(task)
    return plan


# -- one file -----------------------------------------------------------------------


def describe(exc: BaseException) -> str:
    """One line for the user: the message alone for errors of data, files and memory, else with its type."""
    if isinstance(exc, IsADirectoryError) and exc.filename:
        return f"{exc.filename}: is a directory"
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file or directory"
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied" if exc.filename else "permission denied"
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image file that Pillow can read"
    if isinstance(exc, MemoryError):
        return "out of memory"
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    plain = (ValueError, OSError, TypeError, Image.DecompressionBombError, MissingExtraError)
    return text if isinstance(exc, plain) else f"{type(exc).__name__}: {text}"


def finished_output(data: bytes, direction: str) -> bool:
    """True when ``data`` is a finished output of ``direction`` (a ``.vqc`` whose checksum holds, an image Pillow
    verifies), not just something under the target's name."""
    try:
        if direction == COMPRESS:
            import bitstream

            bitstream.unpack(data, max_pixels=None)
        else:
            import io

            from vqcodec.codec.images import open_header

            with open_header(io.BytesIO(data)) as img:
                img.verify()
        return True
    except Exception:
        return False


def _complete(task: Task, direction: str) -> bool:
    """True when ``task.target`` is a finished output (checked, not just present)."""
    return task.target.is_file() and finished_output(task.target.read_bytes(), direction)


class _SaveError(ValueError):
    """Pillow cannot write the decoded image in the target's format."""


#: Formats that lose detail when written, and the quality they are written at unless one is given: high, so
#: that the output format adds little to the codec's own loss.
LOSSY_FORMATS = frozenset({"JPEG", "WEBP", "AVIF"})
DEFAULT_OUTPUT_QUALITY = 95


def image_writer(img: Image.Image, fmt: str, quality: int | None = None) -> Callable:
    """``write(fileobj)`` saving ``img`` as ``fmt`` (``quality``: 0 .. 100 for a lossy format, default
    :data:`DEFAULT_OUTPUT_QUALITY`); a format that cannot hold the image is one clear error."""

    if fmt.upper() == "PNG":
        options = {"compress_level": 3}  # zlib level 3, not Pillow's 6: measured 3x faster on Kodak, files 1.5% larger
    elif fmt.upper() in LOSSY_FORMATS:
        options = {"quality": DEFAULT_OUTPUT_QUALITY if quality is None else int(quality)}
    else:
        options = {}

    def save(f) -> None:
        try:
            img.save(f, format=fmt, **options)
        except (OSError, ValueError, KeyError) as exc:
            raise _SaveError(
                f"cannot write a {img.mode} image as {fmt}: {describe(exc)} (choose another output format, e.g. .png)"
            ) from exc

    return save


def _write(target: Path, write) -> None:
    """Atomic write; an OS error names the target, never the temporary file."""
    try:
        write_atomic(target, write, overwrite=True)
    except _SaveError:
        raise
    except OSError as exc:
        raise OSError(f"cannot write {target}: {exc.strerror or exc}") from exc


def code_source(model, task: Task, source, in_bytes: int, direction: str, options: dict, measure_psnr: bool,
                progress, fmt: str) -> tuple[Outcome, Callable]:
    """Codes ``source`` (a path, or a file object with a ``name``) for ``task``: the outcome and ``write(fileobj)``
    of the output (``fmt``: the image format of a decompressed output). Where the output goes is the caller's."""
    import numpy as np

    from vqcodec import codec
    from vqcodec.metrics import psnr

    if direction == COMPRESS:
        try:
            img = codec.load_image(source, options.get("max_pixels"))
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"cannot read the image: {describe(exc)}") from exc
        data = codec.compress(img, model=model, progress=progress, **options)
        coding = codec.describe_coding(data)
        db = None
        if measure_psnr:
            decoded = codec.decompress(data, model=model, max_pixels=options.get("max_pixels"))
            db = psnr(np.asarray(img.convert("RGB")), np.asarray(decoded.convert("RGB")))
        outcome = Outcome(task, "done", None, in_bytes, len(data), img.width, img.height, img.mode, coding, db)
        return outcome, lambda f: f.write(data)
    data = source.read() if hasattr(source, "read") else Path(source).read_bytes()
    img = codec.decompress(data, model=model, progress=progress, max_pixels=options.get("max_pixels"))
    outcome = Outcome(task, "done", None, in_bytes, 0, img.width, img.height, img.mode)
    return outcome, image_writer(img, fmt, options.get("output_quality"))


def output_format(target: str | os.PathLike) -> str:
    """The image format of a decompressed output, from its suffix (PNG when Pillow does not know it)."""
    return Image.registered_extensions().get(os.path.splitext(os.fspath(target))[1].lower(), "PNG")


def _code_one(model, task: Task, direction: str, options: dict, measure_psnr: bool, progress) -> Outcome:
    t0 = time.perf_counter()
    task.target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(task.target)
    outcome, write = code_source(model, task, task.source, task.source.stat().st_size, direction, options,
                                 measure_psnr, progress, output_format(task.target))
    _write(task.target, write)
    if direction == DECOMPRESS:
        outcome.out_bytes = task.target.stat().st_size
    outcome.seconds = time.perf_counter() - t0
    return outcome


def attempt(model, task: Task, direction: str, options: dict, measure_psnr: bool, progress,
             code: Callable = _code_one) -> Outcome:
    """Codes one task with ``code`` (same arguments); its failure and vqcodec's own warnings (one line each) go into
    the outcome."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = code(model, task, direction, options, measure_psnr, progress)
        except Exception as exc:
            outcome = Outcome(task, "failed", describe(exc), traceback="".join(traceback.format_exception(exc)))
    for w in caught:
        if w.category.__module__.split(".")[0] in ("vqcodec", "bitstream"):
            outcome.warnings.append((str(w.message).strip().splitlines() or [w.category.__name__])[0])
        else:  # the caller's filters decide about the backend's warnings
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return outcome


# -- worker processes ---------------------------------------------------------------

_worker: dict = {}


def _init_worker(model_path: str | None, runtime: str, threads: int, progress_queue) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # a backend's start-up lines; workers report through their results
    from vqcodec import codec
    from vqcodec.runtime.onnx_model import has_export

    path = codec.default_model_path() if model_path is None else Path(model_path)
    if runtime == "keras" or (runtime == "auto" and not has_export(path)):
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    _worker["model"] = codec.load_model(model_path, runtime=runtime, threads=threads)
    _worker["queue"] = progress_queue


def _worker_task(index: int, task: Task, direction: str, options: dict, measure_psnr: bool) -> Outcome:
    q = _worker["queue"]
    last = [0.0]

    def progress(done: int, total: int) -> None:
        fraction = done / max(total, 1)
        q.put((index, fraction - last[0]))
        last[0] = fraction

    return attempt(_worker["model"], task, direction, options, measure_psnr, progress)


def _run(
    tasks: Iterable[Task],
    direction: str,
    *,
    model=None,
    options: dict | None = None,
    jobs: int | None = None,
    overwrite: bool = False,
    measure_psnr: bool = False,
    progress: ProgressCallback | None = None,
    runtime: str = "auto",
    cluster=None,
) -> Iterator[Outcome]:
    options = options or {}
    if cluster is not None:
        from vqcodec.codec import cluster as on_cluster

        yield from on_cluster.run_tasks(tasks, direction, cluster, model=model, options=options, overwrite=overwrite,
                                        measure_psnr=measure_psnr, progress=progress, runtime=runtime)
        return
    finished, pending = split_finished(tasks, direction, overwrite)
    for outcome in finished:
        if progress is not None:
            progress(outcome.task.pixels)
        yield outcome
    if not pending:
        return
    jobs = default_jobs(len(pending)) if jobs is None else max(1, min(int(jobs), len(pending)))
    if jobs == 1 or not isinstance(model, (str, os.PathLike, type(None))):
        yield from _run_here(pending, direction, model, options, measure_psnr, progress, runtime)
    else:
        yield from _run_pool(pending, direction, model, options, jobs, measure_psnr, progress, runtime)


def split_finished(tasks: Iterable[Task], direction: str, overwrite: bool = False) -> tuple[list[Outcome], list[Task]]:
    """(outcomes "exists" for targets an earlier run finished, tasks still to do); with ``overwrite`` all are to do."""
    finished, pending = [], []
    for task in tasks:
        if not overwrite and _complete(task, direction):
            remove_stale_temporaries(task.target)  # a killed --force run may have left one
            finished.append(Outcome(task, "exists", in_bytes=_size(task.source), out_bytes=_size(task.target)))
        else:
            pending.append(task)
    return finished, pending


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _run_here(tasks, direction, model, options, measure_psnr, progress, runtime) -> Iterator[Outcome]:
    from vqcodec import codec

    if model is None or isinstance(model, (str, os.PathLike)):
        model = codec.load_model(model, runtime=runtime)
    for task in tasks:
        last = [0.0]

        def tile_progress(done: int, total: int, task=task, last=last) -> None:
            fraction = done / max(total, 1)
            if progress is not None:
                progress((fraction - last[0]) * task.pixels)
            last[0] = fraction

        outcome = attempt(model, task, direction, options, measure_psnr, tile_progress)
        if progress is not None:
            progress((1.0 - last[0]) * task.pixels)
        yield outcome


def _run_pool(tasks, direction, model, options, jobs, measure_psnr, progress, runtime) -> Iterator[Outcome]:
    """Runs the tasks on ``jobs`` worker processes.

    A worker that dies (killed, out of memory) breaks its whole pool, so the
    tasks the pool had not finished run again on one worker; if that breaks
    too, each runs alone, and only a task that kills its own worker fails.
    """
    context = multiprocessing.get_context("spawn")  # fork after a backend has started is unsafe
    progress_queue = context.Queue()
    reported = [0.0] * len(tasks)

    def drain() -> None:
        while True:
            try:
                index, delta = progress_queue.get_nowait()
            except queue.Empty:
                return
            reported[index] += delta
            if progress is not None:
                progress(delta * tasks[index].pixels)

    def finish(i: int, outcome: Outcome) -> Outcome:
        if progress is not None:
            progress((1.0 - reported[i]) * tasks[i].pixels)
        reported[i] = 1.0
        return outcome

    def run_pass(indices: list[int], workers: int) -> Iterator[Outcome | int]:
        """Outcomes of ``indices``; the index itself for a task whose pool broke before it finished."""
        threads = max(1, (os.cpu_count() or 1) // workers)
        model_path = None if model is None else os.fspath(model)
        with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                         initargs=(model_path, runtime, threads, progress_queue)) as pool:
            running = {pool.submit(_worker_task, i, tasks[i], direction, options, measure_psnr): i for i in indices}
            try:
                while running:
                    finished, _ = futures.wait(running, timeout=0.2, return_when=futures.FIRST_COMPLETED)
                    drain()
                    for future in finished:
                        i = running.pop(future)
                        try:
                            yield finish(i, future.result())
                        except futures.process.BrokenProcessPool:
                            yield i
                        except Exception as exc:
                            yield finish(i, Outcome(tasks[i], "failed", describe(exc)))
            except BaseException:
                for future in running:
                    future.cancel()
                raise

    def retried(indices: list[int], workers: int, broken: list[int]) -> Iterator[Outcome]:
        for item in run_pass(indices, workers):
            if isinstance(item, Outcome):
                yield item
            else:
                broken.append(item)

    first, second = [], []
    yield from retried(list(range(len(tasks))), jobs, first)
    if first:  # again on one worker, with less memory in use
        yield from retried(first, 1, second)
    for i in second:  # then each alone: the task that kills its own worker fails
        last = []
        yield from retried([i], 1, last)
        if last:
            yield finish(i, Outcome(tasks[i], "failed", "a worker process died (out of memory?)"))


def compress_files(
    tasks: Iterable[Task],
    *,
    model=None,
    quality: int | None = None,
    options: dict | None = None,
    jobs: int | None = None,
    overwrite: bool = False,
    measure_psnr: bool = False,
    progress: ProgressCallback | None = None,
    runtime: str = "auto",
    cluster=None,
) -> Iterator[Outcome]:
    """Compresses every task's image to its ``.vqc`` target, yielding an :class:`Outcome` per file as it finishes.

    ``model``: None (the shipped model), a path, or a loaded model (which
    keeps the work in this process). ``jobs``: worker processes (None:
    :func:`default_jobs`). A target that already holds a complete ``.vqc`` is
    kept unless ``overwrite``. ``progress(pixels)`` is called as tiles finish.
    ``runtime``: as in :func:`vqcodec.codec.loading.load_model`. ``options``: more
    keyword arguments of :func:`vqcodec.codec.coding.compress` (``size``, ``psnr``,
    ``strict``, ``lossless``, ``max_pixels``). ``cluster``: a ``dask.distributed.Client``, a scheduler address
    or ``"local:N"``: the tasks run there instead (:mod:`vqcodec.codec.cluster`; sources and targets may then be
    fsspec URLs, and ``jobs`` is the cluster's).
    One file's failure is reported in its outcome and never stops the others.
    """
    options = {**(options or {}), **({} if quality is None else {"quality": quality})}
    return _run(tasks, COMPRESS, model=model, options=options, jobs=jobs, overwrite=overwrite,
                measure_psnr=measure_psnr, progress=progress, runtime=runtime, cluster=cluster)


def decompress_files(
    tasks: Iterable[Task],
    *,
    model=None,
    jobs: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    runtime: str = "auto",
    output_quality: int | None = None,
    max_pixels: int | None = None,
    cluster=None,
) -> Iterator[Outcome]:
    """Decompresses every task's ``.vqc`` file to its image target (format from the suffix; ``output_quality``
    for JPEG, WebP and AVIF targets, see :func:`image_writer`; ``max_pixels`` as in
    :func:`vqcodec.codec.coding.decompress`); see :func:`compress_files`."""
    options = {"output_quality": output_quality, "max_pixels": max_pixels}
    return _run(tasks, DECOMPRESS, model=model, options=options, jobs=jobs, overwrite=overwrite, progress=progress,
                runtime=runtime, cluster=cluster)
