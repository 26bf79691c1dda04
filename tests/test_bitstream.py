"""Tests of the bitstream package's .vqc container (the context model: test_context_model.py)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitstream import (
    ChecksumError,
    CorruptDataError,
    FormatError,
    Header,
    ImageTooLargeError,
    ModelMismatchError,
    NotVQCError,
    TruncatedError,
    UnsupportedVersionError,
    ContextModel,
    pack,
    read_header,
    unpack,
)

FP = bytes(range(1, 9))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- container ---------------------------------------------------------------------------
@st.composite
def headers(draw):
    width, height = draw(st.integers(64, 1 << 24)), draw(st.integers(64, 1 << 24))
    return Header(
        model_fingerprint=draw(st.binary(min_size=8, max_size=8)), width=width, height=height,
        mode=draw(st.sampled_from(["L", "LA", "RGB", "RGBA"])), kind="ecvq", level=draw(st.integers(0, 254)),
        coded_width=draw(st.integers(64, min(width, 1 << 12))), coded_height=draw(st.integers(64, min(height, 1 << 12))),
        latent_height=draw(st.integers(1, 64)), latent_width=draw(st.integers(1, 64)),
        tile_size=draw(st.integers(0, 1 << 16)),
    )


@settings(max_examples=200, deadline=None)
@given(headers(), st.binary(max_size=300), st.binary(max_size=300))
def test_container_roundtrip(header, index_payload, alpha_payload):
    if not header.has_alpha:
        alpha_payload = b""
    data = pack(header, index_payload, alpha_payload)
    h, ip, ap = unpack(data, max_pixels=None, expected_fingerprint=header.model_fingerprint)
    assert h == header and ip == index_payload and ap == alpha_payload
    assert read_header(data) == header
    assert zlib.crc32(data[:-4]) == int.from_bytes(data[-4:], "little")


def _with_version(data: bytes, version: int) -> bytes:
    body = data[:3] + bytes([version]) + data[4:-4]
    return body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")


def _version_3(header: Header, payload: bytes, alpha: bytes = b"") -> bytes:
    """The version-3 file of an ecvq header coded at the image's own size (no coded-size fields)."""
    v4 = pack(header, payload, alpha)
    fixed = 3 + 1 + 1 + 8 + 1
    pos = fixed
    fields = []
    for _ in range(8):  # width, height, level, coded width, coded height, latent h, latent w, tile
        start = pos
        while v4[pos] & 0x80:
            pos += 1
        pos += 1
        fields.append(v4[start:pos])
    body = v4[:3] + b"\x03" + v4[4:fixed] + b"".join(fields[:3] + fields[5:]) + v4[pos:-4]
    return body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")


def test_version_3_ecvq_files_read_as_coded_at_full_size():
    header = _ecvq_header(mode="RGBA")
    v3 = _version_3(header, b"\x01\x02", b"\x03")
    assert v3[3] == 3 and len(v3) == len(pack(header, b"\x01\x02", b"\x03")) - 4
    assert unpack(v3) == (header, b"\x01\x02", b"\x03")
    assert not unpack(v3)[0].resampled
    ecvq = _with_version(pack(_ecvq_header(), b"\x01"), 2)
    with pytest.raises(CorruptDataError, match="payload-kind code 2 does not exist in format version 2 .codes 0, 1.: the version or kind byte is corrupt"):
        unpack(ecvq)
    learned = bytearray(pack(_ecvq_header(), b"\x01"))
    learned[4] = 0  # version 4 has no learned kind
    with pytest.raises(CorruptDataError, match="payload-kind code 0 does not exist in format version 4 .codes 1, 2."):
        unpack(bytes(learned))


def test_a_coded_size_round_trips_and_is_checked():
    header = _ecvq_header(coded_width=384, coded_height=256, latent_height=32, latent_width=48)
    assert header.resampled and unpack(pack(header, b"\x01\x02\x03\x04"))[0] == header
    for kw in (dict(coded_width=769), dict(coded_height=513), dict(coded_width=-1)):
        with pytest.raises(ValueError, match="coded_"):
            _ecvq_header(**kw)
    with pytest.raises(ValueError, match="larger than the coded image"):
        _ecvq_header(coded_width=40, coded_height=40)  # the 64x96 latent grid no longer fits
    with pytest.raises(ValueError, match="coded_width"):
        Header(None, 40, 30, "L", kind="lossless", coded_width=20)
    with pytest.raises(ValueError, match="no longer written"):
        pack(Header(FP, 768, 512, "RGB", num_stages=8, latent_height=64, latent_width=96), b"")


def _ecvq_header(**kw):
    base = dict(model_fingerprint=FP, width=768, height=512, mode="RGB", level=5, latent_height=64, latent_width=96, kind="ecvq")
    base.update(kw)
    return Header(**base)


def test_ecvq_header_round_trip_and_rules():
    for level in (0, 5, 254):
        header = _ecvq_header(level=level, mode="LA")
        data = pack(header, b"\x01\x02\x03\x04", b"A")
        assert data[4] == 2
        assert unpack(data, expected_fingerprint=FP) == (header, b"\x01\x02\x03\x04", b"A")
        assert read_header(data) == header
        with pytest.raises(ModelMismatchError):
            unpack(data, expected_fingerprint=b"\x00" * 8)
    for kw in (dict(level=255), dict(level=-1), dict(num_stages=1), dict(model_fingerprint=None), dict(latent_height=0)):
        with pytest.raises(ValueError):
            _ecvq_header(**kw)
    with pytest.raises(ValueError, match="level"):
        Header(FP, 768, 512, "RGB", num_stages=8, latent_height=64, latent_width=96, level=1)  # stages, not levels


def test_lossless_header_round_trip_and_rules():
    header = Header(None, 40, 30, "LA", kind="lossless")
    data = pack(header, b"PNGDATA")
    assert unpack(data, expected_fingerprint=FP) == (header, b"PNGDATA", b"")  # no model: any model reads it
    assert read_header(data).kind == "lossless"
    with pytest.raises(ValueError, match="no model fingerprint"):
        Header(FP, 40, 30, "L", kind="lossless")
    with pytest.raises(ValueError, match="num_stages"):
        Header(None, 40, 30, "L", num_stages=2, kind="lossless")
    with pytest.raises(ValueError, match="no alpha section"):
        pack(header, b"x", b"alpha")
    bad = bytearray(data)
    bad[4] = 7
    with pytest.raises(CorruptDataError, match="payload-kind code 7"):
        read_header(bytes(bad))


def test_fixed_overhead_is_small():
    # 768x512 RGB, level 5, 64x96 latents: 3 magic + 1 version + 1 kind + 8 fingerprint
    # + 1 mode + 2 + 2 (size) + 1 level + 2 + 2 (coded size) + 1 + 1 (latent) + 1 tile + 1 length + 4 CRC
    assert len(pack(_ecvq_header(), b"")) == 31
    assert len(pack(_ecvq_header(mode="RGBA"), b"", b"")) == 32
    payload = b"x" * 5000  # a ~0.1 bpp Kodak file
    assert len(pack(_ecvq_header(), payload)) - len(payload) == 32  # 2-byte length varint
    # lossless: 3 magic + 1 version + 1 kind + 1 mode + 2 + 2 (size) + 2 length + 4 CRC
    lossless = Header(None, 768, 512, "RGBA", kind="lossless")
    assert len(pack(lossless, payload)) - len(payload) == 16


def test_header_validation():
    for kw in [
        dict(model_fingerprint=b"short"), dict(width=0), dict(height=-1), dict(mode="CMYK"),
        dict(level=-1), dict(level=255), dict(num_stages=1), dict(latent_height=0), dict(tile_size=-1),
        dict(latent_width=769), dict(width=1.5),
    ]:
        with pytest.raises(ValueError):
            _ecvq_header(**kw)
    with pytest.raises(dataclasses.FrozenInstanceError):
        _ecvq_header().width = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="alpha"):
        pack(_ecvq_header(mode="RGB"), b"", b"alpha")


def test_unpack_errors_are_specific():
    data = pack(_ecvq_header(), b"\x01\x02\x03\x04", b"")
    with pytest.raises(NotVQCError, match="not a .vqc file"):
        unpack(b"\x89PNG\r\n\x1a\n" + data)
    with pytest.raises(NotVQCError):
        unpack(b"")
    with pytest.raises(UnsupportedVersionError, match="version 5; this reader understands versions 1, 2, 3, 4"):
        unpack(data[:3] + b"\x05" + data[4:])
    for cut in range(1, len(data)):
        with pytest.raises(TruncatedError, match="truncated"):
            unpack(data[:cut])
    with pytest.raises(FormatError, match="after the end"):
        unpack(data + b"\x00")
    corrupt = bytearray(data)
    corrupt[-6] ^= 0x10
    with pytest.raises(ChecksumError, match="checksum"):
        unpack(bytes(corrupt))
    with pytest.raises(ModelMismatchError, match="model"):
        unpack(data, expected_fingerprint=b"\x00" * 8)
    with pytest.raises(ImageTooLargeError, match="pixels"):
        unpack(data, max_pixels=768 * 512 - 1)
    assert unpack(data, max_pixels=768 * 512)[0] == _ecvq_header()


def test_pixel_limit_checked_without_allocation():
    # a tiny file that announces a gigantic image
    big = Header(FP, width=1 << 24, height=1 << 24, mode="L", kind="ecvq", latent_height=1, latent_width=1)
    data = pack(big, b"")
    with pytest.raises(ImageTooLargeError):
        unpack(data)
    assert unpack(data, max_pixels=None)[0] == big


def test_full_pipeline_with_alpha():
    rng = np.random.default_rng(9)
    grids = [[rng.integers(0, 16, (5, 7, 3)) for _ in range(3)] for _ in range(2)]  # 2 levels, 3 grids each
    tables = ContextModel.fit(grids, 16, 8)
    g = rng.integers(0, 16, (5, 7, 3))
    header = Header(FP, 40, 33, "RGBA", kind="ecvq", level=1, latent_height=5, latent_width=7, tile_size=4)
    data = pack(header, tables.encode(g, 1), b"alpha-bytes")
    h, ip, ap = unpack(data, expected_fingerprint=FP)
    assert h == header and ap == b"alpha-bytes"
    np.testing.assert_array_equal(tables.decode(ip, h.latent_height, h.latent_width, h.level), g)


# -- import hygiene ------------------------------------------------------------------------
def test_import_is_light():
    """`import bitstream` loads neither a deep-learning framework, nor Pillow, nor
    constriction (imported on first use), which keeps it fast."""
    code = (
        "import sys; import bitstream; "
        "print([m for m in sys.modules if m.split('.')[0] in "
        "('keras', 'tensorflow', 'torch', 'jax', 'PIL', 'constriction', 'scipy')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_modules_import_each_other_without_a_cycle():
    """Every module of the package, with its imports of sibling modules (lazy ones
    inside functions included), forms an acyclic graph."""
    import ast
    from pathlib import Path

    import bitstream as package

    root = Path(package.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        siblings = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    siblings.add(node.module.split(".")[0])
                else:
                    siblings.update(alias.name for alias in node.names if (root / f"{alias.name}.py").is_file())
        graph[path.stem] = siblings - {path.stem}
    state = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join(trail + [module])}"
        state[module] = "open"
        for sibling in sorted(graph.get(module, ())):
            visit(sibling, trail + [module])
        state[module] = "done"

    assert {"container", "context_model"} <= set(graph)
    for module in sorted(graph):
        visit(module, [])
