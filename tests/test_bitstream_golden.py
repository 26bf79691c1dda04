"""Golden .vqc files: the byte format must not change silently.

Each file in tests/golden/manifest.json must read as its recorded header and
payloads, an ecvq file must decode to its recorded indices, and files of the
current format version must be reproduced byte for byte. Files of earlier
versions stay readable. If you change the format on purpose, bump
FORMAT_VERSION and run ``python tests/golden/make_golden.py --force``.
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
IDS = [e["file"] for e in MANIFEST]


def _header(entry) -> bitstream.Header:
    fields = dict(entry["header"])
    if fields.get("model_fingerprint") is not None:
        fields["model_fingerprint"] = bytes.fromhex(fields["model_fingerprint"])
    return bitstream.Header(**fields)


def _tables() -> ContextModel:
    stored = np.load(GOLDEN / "ecvq_tables.npz")
    return ContextModel(stored["counts"], stored["offsets"], int(stored["num_codes"]))


@pytest.mark.parametrize("entry", MANIFEST, ids=IDS)
def test_golden_file_reads_as_recorded(entry):
    data = (GOLDEN / entry["file"]).read_bytes()
    assert len(data) == entry["size"] and data[3] == entry["version"]
    header = _header(entry)
    assert bitstream.read_header(data) == header
    h, payload, alpha = bitstream.unpack(data, expected_fingerprint=header.model_fingerprint)
    recorded = entry.get("payload", entry.get("index_payload"))
    assert (h, payload, alpha) == (header, bytes.fromhex(recorded), bytes.fromhex(entry.get("alpha_payload", "")))
    if entry["version"] == bitstream.FORMAT_VERSION:
        assert bitstream.pack(header, payload, alpha) == data


ECVQ = [e for e in MANIFEST if e["header"]["kind"] == "ecvq"]


@pytest.mark.parametrize("entry", ECVQ, ids=[e["file"] for e in ECVQ])
def test_golden_ecvq_file_decodes_identically(entry):
    h, payload, _ = bitstream.unpack((GOLDEN / entry["file"]).read_bytes())
    expected = np.load(GOLDEN / entry["indices"]).astype(np.int64)
    model = _tables()
    np.testing.assert_array_equal(model.decode(payload, h.latent_height, h.latent_width, h.level), expected)
    assert model.encode(expected, h.level) == payload


def test_golden_ecvq_file_has_escapes():
    model = _tables()
    grid = np.load(GOLDEN / "ecvq_rgb_l1.indices.npy")
    window = grid - model.offsets[1]
    assert ((window < 0) | (window >= model.width)).any()


def test_a_resampled_file_and_its_full_size_twin_share_the_payload():
    twin, resampled = (bitstream.unpack((GOLDEN / f"ecvq_rgba_l0.{kind}v4.vqc").read_bytes()) for kind in ("", "resampled."))
    assert resampled[0].resampled and not twin[0].resampled
    assert (resampled[0].coded_width, resampled[0].coded_height) == (twin[0].width, twin[0].height)
    assert resampled[1:] == twin[1:]


@pytest.mark.parametrize("version", [1, 2])
def test_older_golden_files_still_read(version):
    """Files written by format versions 1 (no kind byte) and 2 read as the same learned file."""
    legacy = (GOLDEN / f"legacy_v{version}_rgb_3x16.vqc").read_bytes()
    assert legacy[3] == version
    current = (GOLDEN / "rgb_3x16.vqc").read_bytes()
    assert current[3] == 3
    assert bitstream.unpack(legacy) == bitstream.unpack(current)
