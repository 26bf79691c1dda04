"""The only place the benchmarks touch vqcodec.

Contract used (vqcodec's public API):
  vqcodec.compress(image, quality, model=None, *, timings=None) -> bytes
  vqcodec.decompress(data, model=None, *, timings=None) -> PIL.Image.Image
  vqcodec.load_model(path=None) -> model;  vqcodec.quality_levels(model=None) -> list[int]
  CLI: vqcodec compress IN -o OUT -q Q [--model PATH] [--force]
       vqcodec decompress IN.vqc -o OUT.png [--model PATH] [--force]
``timings``, when a dict, is filled with seconds under "network", "entropy".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PIL import Image

KEY = "vqcodec"
NAME = "vqcodec (ours)"
TIMING_KEYS = ("network", "entropy")
_API = ("compress", "decompress", "load_model", "quality_levels")


def unavailable_reason() -> str | None:
    """None if vqcodec's API can be used, else a one-line reason."""
    try:
        import vqcodec
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip ours"
        return f"cannot import vqcodec ({type(exc).__name__}: {exc})"
    missing = []
    for name in _API:
        try:  # vqcodec resolves some names lazily: a missing submodule raises ImportError here
            getattr(vqcodec, name)
        except Exception:  # noqa: BLE001
            missing.append(name)
    if missing:
        return f"vqcodec does not provide {', '.join(missing)} yet"
    return None


class OurCodec:
    key = KEY
    name = NAME

    def __init__(self, model_path: str | os.PathLike | None = None):
        import vqcodec

        self._vq = vqcodec
        self.model_path = None if model_path is None else str(model_path)
        self.model = vqcodec.load_model(self.model_path)

    def levels(self) -> list[int]:
        return [int(q) for q in self._vq.quality_levels(self.model)]

    def encode(self, image: Image.Image, quality: int, timings: dict | None = None) -> bytes:
        return bytes(self._vq.compress(image, int(quality), model=self.model, timings=timings))

    def decode(self, data: bytes, timings: dict | None = None) -> Image.Image:
        return self._vq.decompress(data, model=self.model, timings=timings).convert("RGB")

    @property
    def description(self) -> str:
        model = self.model_path or "the shipped default model"
        return f"vqcodec {getattr(self._vq, '__version__', '')}".rstrip() + f", model: {model}"


def cli_command(*args: str, model_path: str | None = None) -> tuple[list[str], dict]:
    """argv and environment that run ``vqcodec ARGS`` as a fresh process.

    Runs the console entry point ``vqcodec.cli:main`` with this interpreter, with the
    directory that holds the imported vqcodec package first on PYTHONPATH, so the code
    measured is the code benchmarked in-process, installed or not.
    """
    import vqcodec

    root = str(Path(vqcodec.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = [sys.executable, "-c", "import sys; from vqcodec.cli import main; sys.exit(main())", *args]
    if model_path is not None:
        argv += ["--model", str(model_path)]
    return argv, env
