"""Finding and loading codec models: the shipped default, ``.keras`` files, their exports; fingerprints.

Files name their model by fingerprint; a file of a retired default model is
refused with the release that decodes it.
"""

from __future__ import annotations

import os
import weakref
import zipfile
from importlib.resources import files
from pathlib import Path

from vqcodec.codec.interface import CodecModel
from vqcodec.quality import lowest_qualities

__all__ = [
    "InvalidModelError",
    "RETIRED_DEFAULTS",
    "default_model_path",
    "load_model",
    "resolve_model",
    "model_data",
    "model_fingerprint",
    "quality_levels",
    "check_keras_archive",
]

#: Fingerprints of earlier shipped default models, and the vqcodec release that decodes their files.
RETIRED_DEFAULTS = {
    "5e6f14bca9104e3d": "0.1", "d1f617132dc70358": "0.2", "7f49f6a98e4d6b1b": "0.3", "d9bea797d0be4611": "0.4",
    "f411c3f2f02b369e": "0.5", "b508fca3b8da545d": "0.6",
}

_model_cache: dict[tuple, CodecModel] = {}
_model_info: "weakref.WeakKeyDictionary[object, tuple]" = weakref.WeakKeyDictionary()


class InvalidModelError(ValueError):
    """A model file exists but is not a usable vqcodec model (one-line message)."""


def default_model_path() -> Path:
    """Where the shipped default model lives."""
    return Path(str(files("vqcodec") / "weights" / "default.keras"))


def check_keras_archive(p: Path, shown: str) -> None:
    """Refuses anything but a zip holding config.json before Keras sees it
    (Keras' own messages for such files are long and misleading)."""
    try:
        with zipfile.ZipFile(p) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        raise InvalidModelError(f"{shown} is not a vqcodec model (not a Keras archive)") from None
    if "config.json" not in names:
        raise InvalidModelError(f"{shown} is not a vqcodec model (a zip file without the config.json of a Keras archive)")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_model(path: str | os.PathLike | None = None, runtime: str = "auto", threads: int | None = None) -> CodecModel:
    """Loads a codec model, cached by resolved path and modification time.

    ``path=None`` loads the default model shipped in ``vqcodec/weights/``.
    ``runtime``: "auto" runs the exported graphs beside the ``.keras`` file
    with onnxruntime when they exist (no Keras import), else Keras; "keras" or
    "onnx" forces one. Raises ``FileNotFoundError`` for a missing file,
    :class:`InvalidModelError` (a ``ValueError``) with a one-line message for
    a file that is not a codec model, ``vqcodec.runtime.onnx_model.StaleExportError`` for
    an export made from another version of the model, and ``ImportError``
    naming the extra to install where Keras is needed and missing.
    ``threads``: onnxruntime's threads (exported models only).
    """
    if runtime not in ("auto", "keras", "onnx"):
        raise ValueError(f"runtime must be 'auto', 'keras' or 'onnx', got {runtime!r}")
    if path is None:
        p = default_model_path()
        if not p.is_file():
            raise FileNotFoundError(f"the default model {p} is missing: reinstall vqcodec")
        shown = str(p)
    else:
        shown = os.fspath(path)
        p = Path(shown).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"model file not found: {p}")
    p = p.resolve()
    from vqcodec.runtime.onnx_model import has_export, load_export

    exported = runtime == "onnx" or (runtime == "auto" and has_export(p))
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size, exported, threads)
    model = _model_cache.get(key)
    if model is not None:
        return model
    if exported:
        if not has_export(p):
            raise FileNotFoundError(f"{shown} has no export beside it; run 'vqcodec export {shown}'")
        model = load_export(p, threads=threads)
    else:
        model = _load_keras(p, shown)
    _model_cache[key] = model
    return model


def _load_keras(p: Path, shown: str) -> CodecModel:
    check_keras_archive(p, shown)
    from vqcodec.extras import require

    keras = require("keras", "train", f"running {shown} through Keras")
    from vqcodec.model.variable_rate import VariableRateVQVAE
    from vqcodec.model.vqvae import VQVAEModel

    try:
        model = keras.models.load_model(str(p), compile=False)
    except Exception as exc:
        raise InvalidModelError(
            f"{shown} is not a usable vqcodec model (Keras cannot load it: {_first_line(exc)})"
        ) from exc
    if isinstance(model, VQVAEModel):
        raise InvalidModelError(
            f"{shown} is a residual VQ-VAE, which the codec no longer runs (a VariableRateVQVAE does; "
            "'vqcodec train' makes one); pip install 'vqcodec==0.7.*' codes with it"
        )
    if not isinstance(model, VariableRateVQVAE):
        raise InvalidModelError(f"{shown} is not a vqcodec model (a {type(model).__name__}, not a VariableRateVQVAE)")
    return model


def resolve_model(model: CodecModel | str | os.PathLike | None) -> CodecModel:
    """A loaded model from a model, a path, or None (the default)."""
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(model)
    return model


def model_data(model: CodecModel) -> tuple:
    """``(fingerprint, context model or None)`` of a model, computed once per model object and cached
    (change the weights of a model in place after using it with the codec and the cached values are stale)."""
    try:
        return _model_info[model]
    except KeyError:
        pass
    info = (model.fingerprint(), model.context_model())
    _model_info[model] = info
    return info


def model_fingerprint(model: CodecModel | str | os.PathLike | None = None) -> bytes:
    """8 bytes of SHA-256 over what decoding depends on: the coding tables, the decoder's weights and the
    quantiser's decoding values. Two models that decode every file identically share a fingerprint."""
    return model_data(resolve_model(model))[0]


def quality_levels(model: CodecModel | str | os.PathLike | None = None) -> list[int]:
    """The lowest quality (0 .. 100) of each of a model's operating points, in order: one value per distinct file."""
    return lowest_qualities(len(resolve_model(model).operating_points()))
