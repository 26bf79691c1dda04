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
headers = st.builds(
    Header,
    model_fingerprint=st.binary(min_size=8, max_size=8),
    width=st.integers(64, 1 << 24),
    height=st.integers(64, 1 << 24),
    mode=st.sampled_from(["L", "LA", "RGB", "RGBA"]),
    num_stages=st.integers(1, 255),
    latent_height=st.integers(1, 64),
    latent_width=st.integers(1, 64),
    tile_size=st.integers(0, 1 << 16),
)


@settings(max_examples=200, deadline=None)
@given(headers, st.binary(max_size=300), st.binary(max_size=300))
def test_container_roundtrip(header, index_payload, alpha_payload):
    if not header.has_alpha:
        alpha_payload = b""
    data = pack(header, index_payload, alpha_payload)
    h, ip, ap = unpack(data, max_pixels=None, expected_fingerprint=header.model_fingerprint)
    assert h == header and ip == index_payload and ap == alpha_payload
    assert read_header(data) == header
    assert zlib.crc32(data[:-4]) == int.from_bytes(data[-4:], "little")


def _header(**kw):
    base = dict(
        model_fingerprint=FP, width=768, height=512, mode="RGB", num_stages=8,
        latent_height=64, latent_width=96, tile_size=0,
    )
    base.update(kw)
    return Header(**base)


def _with_version(data: bytes, version: int) -> bytes:
    body = data[:3] + bytes([version]) + data[4:-4]
    return body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")


def test_version_1_and_2_files_still_read():
    """Version 1 had no kind byte, version 2 no ecvq kind: their files read as they always did."""
    v3 = pack(_header(mode="RGBA"), b"\x01\x02", b"\x03")
    assert v3[3] == 3
    body = v3[:3] + b"\x01" + v3[5:-4]
    v1 = body + (zlib.crc32(body) & 0xFFFFFFFF).to_bytes(4, "little")
    v2 = _with_version(v3, 2)
    assert unpack(v1) == unpack(v2) == unpack(v3) == (_header(mode="RGBA"), b"\x01\x02", b"\x03")
    ecvq = _with_version(pack(_ecvq_header(), b"\x01"), 2)
    with pytest.raises(CorruptDataError, match="payload-kind code 2 .valid codes in version 2: 0-1"):
        unpack(ecvq)


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
    assert len(pack(_ecvq_header(), b"")) == len(pack(_header(), b""))  # the level takes the stages' place
    for kw in (dict(level=255), dict(level=-1), dict(num_stages=1), dict(model_fingerprint=None), dict(latent_height=0)):
        with pytest.raises(ValueError):
            _ecvq_header(**kw)
    with pytest.raises(ValueError, match="level"):
        _header(level=1)  # a residual file has stages, not levels


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
    # 768x512 RGB, 8 stages, 64x96 latents: 3 magic + 1 version + 1 kind + 8 fingerprint
    # + 1 mode + 2 + 2 (size) + 1 stages + 1 + 1 (latent) + 1 tile + 1 length + 4 CRC
    assert len(pack(_header(), b"")) == 27
    assert len(pack(_header(mode="RGBA"), b"", b"")) == 28
    payload = b"x" * 5000  # a ~0.1 bpp Kodak file
    assert len(pack(_header(), payload)) - len(payload) == 28  # 2-byte length varint
    # lossless: 3 magic + 1 version + 1 kind + 1 mode + 2 + 2 (size) + 2 length + 4 CRC
    lossless = Header(None, 768, 512, "RGBA", kind="lossless")
    assert len(pack(lossless, payload)) - len(payload) == 16


def test_header_validation():
    for kw in [
        dict(model_fingerprint=b"short"), dict(width=0), dict(height=-1), dict(mode="CMYK"),
        dict(num_stages=0), dict(num_stages=256), dict(latent_height=0), dict(tile_size=-1),
        dict(latent_width=769), dict(width=1.5),
    ]:
        with pytest.raises(ValueError):
            _header(**kw)
    with pytest.raises(dataclasses.FrozenInstanceError):
        _header().width = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="alpha"):
        pack(_header(mode="RGB"), b"", b"alpha")


def test_unpack_errors_are_specific():
    data = pack(_header(), b"\x01\x02\x03\x04", b"")
    with pytest.raises(NotVQCError, match="not a .vqc file"):
        unpack(b"\x89PNG\r\n\x1a\n" + data)
    with pytest.raises(NotVQCError):
        unpack(b"")
    with pytest.raises(UnsupportedVersionError, match="version 4; this reader understands versions 1, 2, 3"):
        unpack(data[:3] + b"\x04" + data[4:])
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
    assert unpack(data, max_pixels=768 * 512)[0] == _header()


def test_pixel_limit_checked_without_allocation():
    # a tiny file that announces a gigantic image
    big = Header(FP, width=1 << 24, height=1 << 24, mode="L", num_stages=1, latent_height=1, latent_width=1)
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
