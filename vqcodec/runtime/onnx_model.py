"""The exported model: the network's index functions run by onnxruntime, without Keras.

Why: importing Keras and TensorFlow costs seconds and most of a gigabyte,
while the network itself runs in a fraction of a second. ``vqcodec export``
(:mod:`vqcodec.runtime.export`) writes ``MODEL.encode.onnx`` and ``MODEL.decode.onnx``
beside ``MODEL.keras``: the model's own ``encode_to_candidates`` and
``decode_from_indices``, traced, so no model logic is written twice. Their
metadata holds the model's fingerprint, its coding tables, its quality levels
and the SHA-256 of the ``.keras`` file they came from, so an export that no
longer matches its model is refused instead of producing wrong files.

This module imports numpy and the model's recipe, and on first use
onnxruntime and ``bitstream``'s context model.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from vqcodec.model.recipe import check_ladder, default_ladder


__all__ = [
    "ExportedModel",
    "load_export",
    "StaleExportError",
    "export_paths",
    "has_export",
    "source_digest",
    "METADATA_KEY",
]

#: Key of the JSON metadata in both ONNX files.
METADATA_KEY = "vqcodec"
EXPORT_VERSION = 4


class StaleExportError(ValueError):
    """The export beside a model was made from another version of that model."""


def export_paths(model_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(MODEL.encode.onnx, MODEL.decode.onnx)`` beside ``MODEL.keras``."""
    p = Path(model_path)
    stem = p.with_suffix("") if p.suffix == ".keras" else p
    return stem.with_name(stem.name + ".encode.onnx"), stem.with_name(stem.name + ".decode.onnx")


def has_export(model_path: str | os.PathLike) -> bool:
    return all(p.is_file() for p in export_paths(model_path))


def source_digest(model_path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a ``.keras`` file: what an export records to recognise its model."""
    h = hashlib.sha256()
    with open(model_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def encode_metadata(
    fingerprint: bytes,
    levels: int,
    num_embeddings: int,
    stride: int,
    digest: str,
    tables: dict[str, np.ndarray],
    rate_weight: float,
    ladder: list[tuple],
    lambdas: list[float],
) -> str:
    """The JSON string both ONNX files carry.

    ``levels``: quality levels. ``tables``: the entropy coder's integer arrays
    by name (a compressed ``.npz``, base64). ``rate_weight``: the price of a
    bit in the code choice; ``ladder``: the quality scale's operating points
    (level, scale, alternatives); ``lambdas``: the levels' rate-distortion
    trade-offs, which choose among a point's alternatives.
    ``family`` stays "ecvq", the name exports of earlier releases were told
    apart by.
    """
    family = "ecvq"
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in tables.items()})
    tables_b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    return json.dumps(
        {
            "export_version": EXPORT_VERSION,
            "family": family,
            "fingerprint": fingerprint.hex(),
            "levels": int(levels),
            "num_embeddings": int(num_embeddings),
            "stride": int(stride),
            "source_sha256": digest,
            "tables": tables_b64,
            "rate_weight": rate_weight,
            "ladder": [[int(level), float(scale), [[int(l), float(s)] for l, s in alternatives]]
                       for level, scale, alternatives in ladder],
            "lambdas": [float(v) for v in lambdas],
        }
    )


def load_export(model_path: str | os.PathLike, threads: int | None = None, check_source: bool = True) -> "ExportedModel":
    """The export beside ``model_path``."""
    return ExportedModel(model_path, threads, check_source, _meta=_checked_metadata(Path(model_path), check_source))


def _checked_metadata(path: Path, check_source: bool) -> dict:
    paths = export_paths(path)
    # The metadata alone (no graph is built yet).
    meta = [_metadata(p) for p in paths]
    if meta[0] != meta[1]:
        raise StaleExportError(f"{paths[0].name} and {paths[1].name} come from different models; export again")
    meta = meta[0]
    if meta["family"] != "ecvq":
        raise StaleExportError(
            f"{paths[0].name} is the export of a residual VQ model, which this vqcodec no longer runs; "
            "pip install 'vqcodec==0.7.*' runs it"
        )
    if check_source and path.is_file() and meta["source_sha256"] != source_digest(path):
        raise StaleExportError(
            f"{paths[0].name} was exported from another version of {path.name}; run 'vqcodec export {path}' again"
        )
    return meta


def _tables(meta: dict) -> dict[str, np.ndarray] | None:
    if meta["tables"] is None:
        return None
    with np.load(io.BytesIO(base64.b64decode(meta["tables"])), allow_pickle=False) as arrays:
        return {k: arrays[k] for k in arrays.files}


class ExportedModel:
    """A codec model run by onnxruntime: the :class:`vqcodec.codec.interface.CodecModel` of an export.

    ``threads``: onnxruntime's intra-op threads (None: its default, all cores).
    ``check_source``: verify that the export was made from ``model_path``'s current bytes.
    """

    def __init__(self, model_path: str | os.PathLike, threads: int | None = None, check_source: bool = True, *, _meta=None):
        self.path = Path(model_path)
        self._paths = export_paths(self.path)
        self._threads = threads
        # Each session is made when first used, so a decompress never builds the encoder, nor a compress the decoder.
        self._sessions: dict[int, object] = {}
        meta = _meta if _meta is not None else _checked_metadata(self.path, check_source)
        self._fingerprint = bytes.fromhex(meta["fingerprint"])
        self.num_embeddings = int(meta["num_embeddings"])
        self.num_qualities = int(meta["levels"])
        self.stride = int(meta["stride"])
        self.rate_weight = float(meta["rate_weight"])
        self.lambdas, ladder = meta.get("lambdas"), meta.get("ladder")
        if self.lambdas is None:  # an export made before exports carried them: the model's config has them
            config = _keras_config(self.path)
            self.lambdas, ladder = config.get("lambdas"), config.get("ladder")
        if self.lambdas is None:
            self._ladder = tuple((level, 1.0, ()) for level in range(self.num_qualities))
        else:
            self._ladder = default_ladder(self.lambdas) if ladder is None else check_ladder(ladder, self.num_qualities)
        self._tables = _tables(meta)
        self._context_model = None

    def fingerprint(self) -> bytes:
        """The fingerprint of the model the export was made from."""
        return self._fingerprint

    def operating_points(self) -> tuple[tuple[int, float, tuple], ...]:
        """The quality scale's points of the model the export was made from."""
        return self._ladder

    def context_model(self):
        """The entropy coder of the stored tables (built once: 25 ms); None where the model had none."""
        if self._context_model is None and self._tables is not None:
            from bitstream.context_model import ContextModel

            self._context_model = ContextModel.stored(self._tables["counts"], self._tables["offsets"], self.num_embeddings)
        return self._context_model

    def _session(self, which: int):
        if which not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            # The arena stays on (measured faster, and with sub-pixel convolutions smaller), but
            # without memory patterns: those are planned per input shape and each keeps its own
            # blocks, so images and tiles of several shapes grew a worker to 0.42-0.92 GB
            # (measured: 0.27 GB over Kodak's two orientations, 0.58 GB encoding 24 MP, and faster).
            options.enable_mem_pattern = False
            if self._threads is not None:
                options.intra_op_num_threads = int(self._threads)
            options.inter_op_num_threads = 1
            self._sessions[which] = ort.InferenceSession(str(self._paths[which]), options, providers=["CPUExecutionProvider"])
        return self._sessions[which]

    def encode_to_indices(self, x: np.ndarray, quality: int, region=None) -> np.ndarray:
        """Indices ``(1, h, w, G)`` at level ``quality`` of a float32 image batch ``(1, H, W, 3)`` in [0, 1].

        ``region``: (top, bottom, left, right) on the latent grid, the part to
        quantise (None: all of it), as in :func:`vqcodec.model.transforms.latent_region`.
        The graph gives each group's candidate codes and distances; the entropy
        coder chooses among them, as the Keras model's ``encode_to_indices`` does.
        """
        session = self._session(0)
        if region is None:
            region = (0, x.shape[1] // self.stride, 0, x.shape[2] // self.stride)
        image, box, level = (i.name for i in session.get_inputs()[:3])
        feed = {image: np.ascontiguousarray(x, np.float32), box: np.asarray(region, np.int32),
                level: np.asarray(quality, np.int32)}
        candidates, distances = session.run(None, feed)
        return self.context_model().choose(candidates[0], distances[0], int(quality), self.rate_weight)[None]

    def decode_from_indices(self, indices: np.ndarray, quality: int) -> np.ndarray:
        """Float image ``(1, H, W, 3)`` from indices ``(1, h, w, G)`` coded at level ``quality``."""
        session = self._session(1)
        names = [i.name for i in session.get_inputs()]
        feed = {names[0]: np.ascontiguousarray(indices, np.int32), names[1]: np.asarray(quality, np.int32)}
        return session.run(None, feed)[0]


def _keras_config(path: Path) -> dict:
    """The model config inside a ``.keras`` file (its ``config.json``), or {} where there is none to read."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json")).get("config", {})
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def _fields(data: bytes):
    """``(field number, bytes)`` of a protobuf message's length-delimited fields; other wire types skipped."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        wire = tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated field")
            yield tag >> 3, data[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"unexpected wire type {wire}")
    if pos != len(data):
        raise ValueError("truncated message")


def metadata_props(path: str | os.PathLike) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` (ModelProto field 14), read from the protobuf wire format.

    Why not ``onnx.load``: importing the onnx package alone costs about 0.2 s,
    more than the rest of a command's start-up; the top-level fields are walked
    here and the graph is skipped unparsed.
    """
    props = {}
    for number, entry in _fields(Path(path).read_bytes()):
        if number == 14:  # StringStringEntryProto: key = 1, value = 2
            kv = dict(_fields(entry))
            props[kv.get(1, b"").decode("utf-8")] = kv.get(2, b"").decode("utf-8")
    return props


def _metadata(path: Path) -> dict:
    """The vqcodec metadata of an exported ONNX file, read without building its graph."""
    try:
        props = metadata_props(path)
    except (OSError, ValueError) as exc:
        raise StaleExportError(f"{path} is not a readable ONNX file: {exc}") from None
    try:
        meta = json.loads(props[METADATA_KEY])
    except (KeyError, ValueError):
        raise StaleExportError(f"{path} is not a vqcodec export (no {METADATA_KEY!r} metadata)") from None
    if meta.get("export_version") != EXPORT_VERSION:
        raise StaleExportError(f"{path} is export version {meta.get('export_version')}; run 'vqcodec export' again")
    return meta
