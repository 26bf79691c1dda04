"""Folder mode on a Dask cluster, reading and writing wherever fsspec reaches (local folders, s3://, gs://, ...).

Dask's distributed scheduler does the scheduling: one task per file, a
worker plugin that loads the model once per worker, and Dask's own
rescheduling when a worker dies. Everything a task does is the folder mode's
(:func:`vqcodec.codec.batch.code_source`), so the bytes are the same. Outputs
appear whole or not at all: a local file is written to a temporary name and
renamed, an object is written by one PUT. A task first checks its target, so
a rerun keeps the outputs an earlier run finished. Needs the ``dask`` extra
(``distributed``, ``fsspec``; ``s3fs`` for ``s3://``).
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from vqcodec.codec.batch import (
    COMPRESS, VQC_SUFFIX, FolderPlan, Outcome, ProgressCallback, Task, attempt, code_source, describe,
    finished_output, header_pixels, image_suffixes, output_format,
)
from vqcodec.extras import require

try:  # the plugin's base; without the dask extra nothing here runs (connect says which extra to install)
    from distributed import WorkerPlugin as _PluginBase
except ImportError:
    _PluginBase = object

__all__ = ["plan_tree", "run_tasks", "connect", "is_url", "LOCAL_PREFIX"]

#: ``--cluster local:N`` starts a cluster of N worker processes on this machine.
LOCAL_PREFIX = "local:"
PLUGIN = "vqcodec-model"


def is_url(path: str) -> bool:
    """A location with a protocol (``s3://bucket/x``, ``file:///x``) rather than a plain path."""
    return "://" in str(path)


def _fsspec():
    return require("fsspec", "dask", "--cluster")


def _filesystem(url: str):
    """``(filesystem, path)`` of ``url``; the protocol's own package is named in one line when missing."""
    fsspec = _fsspec()
    try:
        return fsspec.core.url_to_fs(str(url))
    except ImportError as exc:
        raise ImportError(f"{url}: {describe(exc)} (for s3:// install 'vqcodec[dask]', which brings s3fs)") from None


def _is_local(fs) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


# -- planning ---------------------------------------------------------------------------------------------------


def plan_tree(src: str, dst: str, direction: str, out_suffix: str = ".png") -> FolderPlan:
    """The tasks of mirroring ``src`` into ``dst`` (paths or fsspec URLs): the folder mode's plan
    (:func:`vqcodec.codec.batch.plan_folder`), the headers read a few at a time."""
    fs_in, root = _filesystem(src)
    fs_out, out_root = _filesystem(dst)
    if not fs_in.isdir(root):
        raise FileNotFoundError(f"{src}: no such folder")
    root, out_root = root.rstrip("/"), out_root.rstrip("/")

    def shown(fs, base: str, given: str, path: str) -> str:
        """Local paths as the user gave their root (as folder mode shows them), URLs whole."""
        return os.path.join(given, posixpath.relpath(path, base)) if _is_local(fs) else fs.unstrip_protocol(path)

    inside = type(fs_in) is type(fs_out) and (out_root + "/").startswith(root + "/") and out_root != root
    plan = FolderPlan()
    suffixes = image_suffixes()
    chosen = []
    for path in sorted(fs_in.find(root)):
        if inside and (path + "/").startswith(out_root + "/"):
            continue
        relative = posixpath.relpath(path, root)
        stem, suffix = posixpath.splitext(relative)
        suffix = suffix.lower()
        if (direction == COMPRESS) == (suffix == VQC_SUFFIX):
            plan.skipped.append(shown(fs_in, root, src, path))
            continue
        target = posixpath.join(out_root, stem + (VQC_SUFFIX if direction == COMPRESS else out_suffix))
        chosen.append((path, target, suffix))

    def measured(item):
        path, target, suffix = item
        try:
            with fs_in.open(path, "rb") as f:
                return item, header_pixels(f, direction), None
        except Exception as exc:  # noqa: BLE001  (the file's failure, reported by name)
            return item, 0, exc

    targets: dict[str, str] = {}
    with ThreadPoolExecutor(16) as pool:
        for (path, target, suffix), pixels, exc in pool.map(measured, chosen):
            task = Task(shown(fs_in, root, src, path), shown(fs_out, out_root, dst, target), pixels)
            if exc is None and task.target in targets:
                plan.failed.append(Outcome(task, "failed", f"its output {task.target} is also the output of "
                                                           f"{targets[task.target]}"))
            elif exc is None:
                targets[task.target] = task.source
                plan.tasks.append(task)
            elif direction == COMPRESS and suffix not in suffixes:
                plan.skipped.append(task.source)
            else:
                what = "the image" if direction == COMPRESS else "the .vqc header"
                plan.failed.append(Outcome(task, "failed", f"cannot read {what}: {describe(exc)}"))
    return plan


# -- on the workers ---------------------------------------------------------------------------------------------


class _ModelPlugin(_PluginBase):
    """Loads the model once per worker, when the worker starts or the plugin is registered; named for its model
    and runtime, so that runs sharing a cluster each find their own."""

    def __init__(self, model: str | None, runtime: str, threads: int):
        self.name = f"{PLUGIN}-{runtime}-{os.urandom(6).hex()}"
        self.model_path, self.runtime, self.threads = model, runtime, threads
        self.model = None

    def setup(self, worker) -> None:
        from vqcodec import codec

        self.model = codec.load_model(self.model_path, runtime=self.runtime, threads=self.threads)

    def teardown(self, worker) -> None:
        self.model = None


def _complete(fs, path: str, direction: str) -> bool:
    """The target holds a finished output (checked, not just present)."""
    try:
        return fs.isfile(path) and finished_output(fs.cat_file(path), direction)
    except OSError:
        return False


def _code_at(model, task: Task, direction: str, options: dict, measure_psnr: bool, progress) -> Outcome:
    """One task on a worker: the folder mode's coding, between fsspec reads and writes."""
    from vqcodec.atomic_write import remove_stale_temporaries, write_atomic

    t0 = time.perf_counter()
    fs_in, src = _filesystem(task.source)
    fs_out, dst = _filesystem(task.target)
    data = fs_in.cat_file(src)
    source = io.BytesIO(data)
    source.name = posixpath.basename(src)
    outcome, write = code_source(model, task, source, len(data), direction, options, measure_psnr, progress,
                                 output_format(dst))
    if _is_local(fs_out):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        remove_stale_temporaries(dst)  # a killed run may have left one
        write_atomic(dst, write, overwrite=True)
        size = os.path.getsize(dst)
    else:
        buffer = io.BytesIO()
        write(buffer)
        fs_out.pipe_file(dst, buffer.getvalue())  # one PUT: the object appears whole or not at all
        size = buffer.tell()
    outcome.out_bytes = size
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _task(task: Task, direction: str, options: dict, measure_psnr: bool, overwrite: bool, plugin: str) -> Outcome:
    from distributed import get_worker

    fs_out, dst = _filesystem(task.target)
    if not overwrite and _complete(fs_out, dst, direction):
        fs_in, src = _filesystem(task.source)
        return Outcome(task, "exists", in_bytes=fs_in.size(src), out_bytes=fs_out.size(dst))
    model = get_worker().plugins[plugin].model
    return attempt(model, task, direction, options, measure_psnr, None, code=_code_at)


# -- the client -------------------------------------------------------------------------------------------------


def connect(cluster) -> tuple:
    """``(client, owned)`` for a ``distributed.Client``, a scheduler address, or ``"local:N"`` (a new local
    cluster of N one-thread worker processes, closed with the client)."""
    distributed = require("distributed", "dask", "--cluster")
    if isinstance(cluster, distributed.Client):
        return cluster, False
    address = str(cluster)
    if address.startswith(LOCAL_PREFIX):
        workers = int(address[len(LOCAL_PREFIX):])
        local = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL)
        return distributed.Client(local, set_as_default=False), True
    return distributed.Client(address, set_as_default=False, timeout="30s"), True


def run_tasks(
    tasks: Iterable[Task],
    direction: str,
    cluster,
    *,
    model=None,
    options: dict | None = None,
    overwrite: bool = False,
    measure_psnr: bool = False,
    progress: ProgressCallback | None = None,
    runtime: str = "auto",
) -> Iterator[Outcome]:
    """Runs the tasks on ``cluster`` (see :func:`connect`), one Dask task each, yielding outcomes as they finish.

    ``model``: None (the shipped model) or a model path every worker can read.
    """
    tasks = list(tasks)
    if not tasks:
        return
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError("on a cluster, model must be a path the workers can read (or None: the shipped model)")
    client, owned = connect(cluster)
    plugin = None
    try:
        slots = client.nthreads()
        if any(n > 1 for n in slots.values()):
            raise ValueError("the cluster's workers run several threads each: start them with --nthreads 1 "
                             "(and --nworkers for more processes), so that each task has its worker's model alone")
        workers = max(1, len(slots))
        threads = max(1, (os.cpu_count() or 1) // workers) if str(cluster).startswith(LOCAL_PREFIX) else 1
        plugin = _ModelPlugin(None if model is None else os.fspath(model), runtime, threads)
        client.register_plugin(plugin, name=plugin.name)
        from distributed import as_completed

        futures = {
            client.submit(_task, task, direction, options or {}, measure_psnr, overwrite, plugin.name, pure=False,
                          key=f"vqcodec-{direction}-{i}-{os.urandom(4).hex()}"): task
            for i, task in enumerate(tasks)
        }
        for future in as_completed(futures, loop=client.loop):
            task = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001  (e.g. the task killed every worker it ran on)
                outcome = Outcome(task, "failed", describe(exc))
            if progress is not None:
                progress(task.pixels)
            yield outcome
    finally:
        if plugin is not None and not owned:  # a shared cluster keeps no model of ours
            try:
                client.unregister_worker_plugin(plugin.name)
            except Exception:  # noqa: BLE001  (a worker that left takes its plugin with it)
                pass
        if owned:
            cluster_object = client.cluster
            client.close()
            if cluster_object is not None:
                cluster_object.close()
