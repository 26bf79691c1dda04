"""Golden .vqc files: the byte format must not change silently.

Each file in tests/golden/manifest.json must decode to its recorded header,
alpha payload and indices, and re-encoding the indices must reproduce the file
byte for byte.  If you change the format on purpose, bump FORMAT_VERSION and
regenerate with ``python tests/golden/make_golden.py --force``.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import bitstream
from bitstream.context_model import ContextModel

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())


LEARNED = [e for e in MANIFEST if e["header"]["kind"] == "learned"]
LOSSLESS = [e for e in MANIFEST if e["header"]["kind"] == "lossless"]
ECVQ = [e for e in MANIFEST if e["header"]["kind"] == "ecvq"]


@pytest.mark.parametrize("entry", LEARNED, ids=[e["file"] for e in LEARNED])
def test_retired_learned_files_still_read(entry):
    """Residual-VQ files are no longer decoded, but the container reads them, so the codec can name them."""
    data = (GOLDEN / entry["file"]).read_bytes()
    assert len(data) == entry["size"]
    hdr = dict(entry["header"])
    hdr["model_fingerprint"] = bytes.fromhex(hdr["model_fingerprint"])
    header = bitstream.Header(**hdr)
    assert bitstream.read_header(data) == header
    h, index_payload, alpha = bitstream.unpack(data, expected_fingerprint=header.model_fingerprint)
    assert (h, index_payload, alpha) == (header, bytes.fromhex(entry["index_payload"]), bytes.fromhex(entry["alpha_payload"]))
    assert bitstream.pack(header, index_payload, alpha) == data


@pytest.mark.parametrize("entry", ECVQ, ids=[e["file"] for e in ECVQ])
def test_golden_ecvq_file_decodes_identically(entry):
    data = (GOLDEN / entry["file"]).read_bytes()
    assert len(data) == entry["size"] and data[3] == 3 and data[4] == 2
    stored = np.load(GOLDEN / entry["tables"])
    model = ContextModel(stored["counts"], stored["offsets"], int(stored["num_codes"]))
    expected = np.load(GOLDEN / entry["indices"]).astype(np.int64)
    hdr = dict(entry["header"])
    hdr["model_fingerprint"] = bytes.fromhex(hdr["model_fingerprint"])
    header = bitstream.Header(**hdr)
    h, index_payload, alpha = bitstream.unpack(data, expected_fingerprint=header.model_fingerprint)
    assert h == header and alpha == bytes.fromhex(entry["alpha_payload"])
    out = model.decode(index_payload, h.latent_height, h.latent_width, h.level)
    np.testing.assert_array_equal(out, expected)
    assert bitstream.pack(header, model.encode(expected, h.level), alpha) == data


def test_golden_ecvq_file_has_escapes():
    stored = np.load(GOLDEN / "ecvq_tables.npz")
    model = ContextModel(stored["counts"], stored["offsets"], int(stored["num_codes"]))
    grid = np.load(GOLDEN / "ecvq_rgb_l1.indices.npy")
    window = grid - model.offsets[1]
    assert ((window < 0) | (window >= model.width)).any()


@pytest.mark.parametrize("entry", LOSSLESS, ids=[e["file"] for e in LOSSLESS])
def test_golden_lossless_file(entry):
    data = (GOLDEN / entry["file"]).read_bytes()
    assert len(data) == entry["size"]
    header = bitstream.Header(**entry["header"])
    assert bitstream.unpack(data) == (header, bytes.fromhex(entry["payload"]), b"")
    assert bitstream.pack(header, bytes.fromhex(entry["payload"])) == data


@pytest.mark.parametrize("version", [1, 2])
def test_older_golden_files_still_decode(version):
    """Files written by format versions 1 (no kind byte) and 2 read as the same learned file."""
    entry = next(e for e in MANIFEST if e["file"] == "rgb_3x16.vqc")
    legacy = (GOLDEN / f"legacy_v{version}_rgb_3x16.vqc").read_bytes()
    assert legacy[3] == version
    current = (GOLDEN / entry["file"]).read_bytes()
    assert current[3] == 3
    assert bitstream.unpack(legacy) == bitstream.unpack(current)
