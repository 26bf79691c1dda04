"""Tests of the bitstream package: tables, entropy coding, .vqc container."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitstream
from bitstream import (
    ChecksumError,
    CorruptDataError,
    CodingTables,
    FormatError,
    Header,
    ImageTooLargeError,
    ModelMismatchError,
    NotVQCError,
    TruncatedError,
    UnsupportedVersionError,
    decode_indices,
    encode_indices,
    pack,
    read_header,
    unpack,
)

FP = bytes(range(1, 9))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- helpers ---------------------------------------------------------------------------
def synth_grids(rng, n, S, K, h, w, model_seed=0):
    """Residual-VQ-like grids: stage 0 piecewise constant with noise, later
    stages correlated with the previous stage and with their neighbours.
    Grids drawn with the same ``model_seed`` share one distribution."""
    mrng = np.random.default_rng([model_seed, S, K])
    skew = mrng.dirichlet(np.full(K, 0.3))
    maps = [mrng.integers(0, K, K) for _ in range(S)]
    out = []
    for _ in range(n):
        g = np.empty((S, h, w), np.int64)
        bs = int(rng.integers(2, 5))
        blocks = rng.choice(K, size=(-(-h // bs), -(-w // bs)), p=skew)
        g[0] = np.kron(blocks, np.ones((bs, bs), np.int64))[:h, :w]
        noise = rng.random((h, w)) < 0.3
        g[0][noise] = rng.choice(K, size=int(noise.sum()), p=skew)
        for s in range(1, S):
            dep = rng.random((h, w)) < 0.4
            g[s] = np.where(dep, maps[s][g[s - 1]], rng.choice(K, size=(h, w), p=skew))
        out.append(g)
    return out


def random_tables(rng, S, K):
    """Arbitrary valid tables (not fitted): random maps, counts and boosts."""
    B = int(rng.integers(1, 5))
    bucket_map = rng.integers(0, B, (S, K))
    counts = rng.integers(1, 1000, (S, B, K))
    if rng.random() < 0.3:
        counts[:, :, rng.integers(0, K)] = 1  # some very unlikely code
    boost = np.zeros((S, 5, 5), np.int64)
    for n in range(1, 5):
        for e in range(n + 1):
            boost[:, n, e] = rng.integers(0, 1 << int(rng.integers(1, 24)), S)
    return CodingTables(bucket_map, counts, boost)


@st.composite
def coding_cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    S = draw(st.integers(1, 4))
    K = draw(st.sampled_from([2, 3, 7, 16, 64, 256, 300]))
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["uniform", "random", "fitted"]))
    if kind == "uniform":
        tables = CodingTables.uniform(S, K)
    elif kind == "random":
        tables = random_tables(rng, S, K)
    else:
        tables = CodingTables.fit(synth_grids(rng, 3, S, K, 8, 8), S, K, num_buckets=4)
    S_used = draw(st.integers(1, S))
    if draw(st.booleans()):
        indices = synth_grids(rng, 1, S, K, h, w)[0][:S_used]
    else:
        indices = rng.integers(0, K, (S_used, h, w))
    return tables, indices


# -- entropy coding ----------------------------------------------------------------------
@SETTINGS
@given(coding_cases())
def test_roundtrip_exact(case):
    tables, indices = case
    payload = encode_indices(indices, tables)
    assert isinstance(payload, bytes) and len(payload) % 4 == 0
    out = decode_indices(payload, tables, *indices.shape)
    assert out.shape == indices.shape
    np.testing.assert_array_equal(out, indices)


@SETTINGS
@given(coding_cases())
def test_size_matches_cross_entropy(case):
    tables, indices = case
    bits = 8 * len(encode_indices(indices, tables))
    ideal = tables.cross_entropy_bits(indices)
    assert bits <= 1.01 * ideal + 64  # within 1% + 8 bytes (range-coder flush)
    assert bits >= 0.99 * ideal - 64


def test_size_close_to_cross_entropy_realistic():
    rng = np.random.default_rng(1)
    train = synth_grids(rng, 4, 8, 256, 32, 48)
    tables = CodingTables.fit(train, 8, 256)
    g = synth_grids(rng, 1, 8, 256, 64, 96)[0]
    bits = 8 * len(encode_indices(g, tables))
    ideal = tables.cross_entropy_bits(g)
    assert 0.99 * ideal <= bits <= 1.01 * ideal + 64, (bits, ideal)


def test_context_tables_beat_static_on_held_out():
    rng = np.random.default_rng(2)
    data = synth_grids(rng, 10, 4, 64, 24, 32)
    train, test = data[:7], data[7:]
    static = CodingTables.fit(train, 4, 64, num_buckets=1, spatial=False)
    ctx = CodingTables.fit(train, 4, 64)
    h_static = sum(static.cross_entropy_bits(g) for g in test)
    h_ctx = sum(ctx.cross_entropy_bits(g) for g in test)
    assert h_ctx < 0.95 * h_static, (h_ctx, h_static)


def test_fewer_stages_than_tables():
    rng = np.random.default_rng(3)
    tables = CodingTables.fit(synth_grids(rng, 2, 5, 32, 10, 10), 5, 32)
    g = synth_grids(rng, 1, 5, 32, 7, 9)[0]
    for s in range(1, 6):
        out = decode_indices(encode_indices(g[:s], tables), tables, s, 7, 9)
        np.testing.assert_array_equal(out, g[:s])


def test_roundtrip_default_model_size():
    # 8 stages of 256 codes on Kodak's 64x96 latent grid (timings: benchmarks/)
    rng = np.random.default_rng(4)
    tables = random_tables(rng, 8, 256)
    g = synth_grids(rng, 1, 8, 256, 64, 96)[0]
    out = decode_indices(encode_indices(g, tables), tables, 8, 64, 96)
    np.testing.assert_array_equal(out, g)


def test_encode_rejects_bad_indices():
    tables = CodingTables.uniform(2, 8)
    with pytest.raises(ValueError):
        encode_indices(np.full((1, 2, 2), 8), tables)
    with pytest.raises(ValueError):
        encode_indices(np.full((1, 2, 2), -1), tables)
    with pytest.raises(ValueError):
        encode_indices(np.zeros((3, 2, 2), np.int64), tables)  # more stages than tables
    with pytest.raises(ValueError):
        encode_indices(np.zeros((2, 2), np.int64), tables)
    with pytest.raises(ValueError):
        encode_indices(np.zeros((1, 2, 2), np.float32), tables)


def test_decode_refuses_huge_grids_before_allocating():
    tables = CodingTables.uniform(255, 4)
    with pytest.raises(ImageTooLargeError):
        decode_indices(b"", tables, 255, 1 << 20, 1 << 20)
    with pytest.raises(ImageTooLargeError):
        decode_indices(b"", tables, 2, 10, 10, max_symbols=199)
    assert decode_indices(encode_indices(np.zeros((2, 10, 10), np.int64), tables), tables, 2, 10, 10,
                          max_symbols=200).shape == (2, 10, 10)


def test_decode_refuses_payload_too_short_for_its_grid_before_allocating():
    # 2 bits per symbol under uniform tables of 4 codes: a 3x10x10 grid needs 600 bits
    tables = CodingTables.uniform(3, 4)
    assert tables.min_coded_bits(3, 10, 10) == pytest.approx(600, rel=1e-4)
    with pytest.raises(bitstream.CorruptDataError, match=r"too short for a 3x10x10 index grid"):
        decode_indices(b"\x00" * 64, tables, 3, 10, 10)  # 512 bits < 600 - 64
    # a few bytes announcing 2**40 symbols: refused, not allocated (no cap on symbols here)
    with pytest.raises(bitstream.CorruptDataError, match="too short"):
        decode_indices(b"\x00" * 8, tables, 3, 1 << 20, 1 << 20, max_symbols=None)


@pytest.mark.parametrize("K", [2, 3, 16, 256, 4096])
def test_payload_bound_never_refuses_a_real_payload(K):
    """The most compressible grids (one code everywhere) under the most skewed
    tables the format allows still code to at least ``min_coded_bits``."""
    S = 2
    for top in (2, 100, (1 << 20) - (K - 1)):
        counts = np.ones((S, 1, K), np.int64)
        counts[:, :, 0] = top
        for beta in (0, 1 << 10, 1 << 16, 1 << 24):
            boost = np.zeros((S, 5, 5), np.int64)
            for n in range(1, 5):
                boost[:, n, : n + 1] = beta
            tables = CodingTables(np.zeros((S, K), np.int64), counts, boost)
            for h, w in ((1, 1), (1, 7), (40, 30), (200, 150)):
                g = np.zeros((S, h, w), np.int64)
                payload = encode_indices(g, tables)
                assert 8 * len(payload) >= tables.min_coded_bits(S, h, w), (K, top, beta, h, w)
                np.testing.assert_array_equal(decode_indices(payload, tables, S, h, w), g)


@SETTINGS
@given(coding_cases())
def test_payload_bound_holds_for_random_cases(case):
    tables, indices = case
    bits = 8 * len(encode_indices(indices, tables))
    assert bits >= tables.min_coded_bits(*indices.shape)
    # a lower bound on the ideal size too, not just on what the coder emits
    assert tables.min_coded_bits(*indices.shape) <= tables.cross_entropy_bits(indices) + 1e-6


def test_payload_bound_is_below_the_cost_of_every_small_grid():
    # Every 2-stage 1x1 grid (one anchor per stage): the bound must not exceed any of them,
    # whichever bucket row the first stage's code selects.
    import itertools

    for seed in range(60):
        tables = random_tables(np.random.default_rng(seed), 2, 3)
        for codes in itertools.product(range(3), repeat=2):
            idx = np.array(codes).reshape(2, 1, 1)
            assert tables.min_coded_bits(2, 1, 1) <= tables.cross_entropy_bits(idx) + 1e-9, (seed, codes)


def test_decode_rejects_bad_payloads():
    rng = np.random.default_rng(5)
    tables = random_tables(rng, 2, 16)
    g = rng.integers(0, 16, (2, 5, 6))
    payload = encode_indices(g, tables)
    with pytest.raises(FormatError, match="32-bit words"):
        decode_indices(payload[:-1], tables, 2, 5, 6)
    with pytest.raises(FormatError, match="left over"):
        decode_indices(payload + b"\x01\x02\x03\x04" * 3, tables, 2, 5, 6)
    for _ in range(200):  # garbage either decodes to something or raises FormatError
        junk = rng.bytes(4 * int(rng.integers(0, 12)))
        try:
            out = decode_indices(junk, tables, 2, 5, 6)
        except FormatError:
            continue
        assert out.shape == (2, 5, 6) and out.min() >= 0 and out.max() < 16


# -- tables ------------------------------------------------------------------------------
@SETTINGS
@given(coding_cases())
def test_tables_array_roundtrip(case):
    tables, _ = case
    arr = tables.to_array()
    assert arr.dtype == np.int32 and arr.ndim == 1
    again = CodingTables.from_array(arr)
    assert again == tables
    np.testing.assert_array_equal(again.to_array(), arr)


def test_fit_is_deterministic_and_valid():
    rng = np.random.default_rng(6)
    grids = synth_grids(rng, 4, 3, 40, 16, 16)
    a, b = CodingTables.fit(grids, 3, 40), CodingTables.fit(grids, 3, 40)
    assert a == b
    assert a.counts.min() >= 1
    assert a.num_stages == 3 and a.num_codes == 40


def test_fit_handles_unseen_codes_and_generators():
    grids = (np.zeros((2, 3, 3), np.int64) for _ in range(2))  # only code 0 ever seen
    t = CodingTables.fit(grids, 2, 10)
    g = np.full((2, 3, 3), 9)
    np.testing.assert_array_equal(decode_indices(encode_indices(g, t), t, 2, 3, 3), g)


def test_fit_rejects_bad_grids():
    with pytest.raises(ValueError):
        CodingTables.fit([np.zeros((3, 4, 4), np.int64)], 2, 8)
    with pytest.raises(ValueError):
        CodingTables.fit([np.full((2, 4, 4), 8)], 2, 8)


def test_default_model_tables_size():
    rng = np.random.default_rng(7)
    t = CodingTables.fit(synth_grids(rng, 2, 8, 256, 16, 16), 8, 256)
    assert t.to_array().nbytes < 200_000  # 16 buckets: ~140 kB


def _bad(arr, **kw):
    arr = arr.copy()
    for i, v in kw.items():
        arr[int(i[1:])] = v
    return arr


def test_from_array_rejects_bad_arrays():
    good = CodingTables.fit(synth_grids(np.random.default_rng(8), 2, 2, 8, 6, 6), 2, 8, num_buckets=2).to_array()
    S, K, B = 2, 8, 2
    counts_at = 8 + S * K
    boost_at = counts_at + S * B * K
    bad_arrays = [
        good[:5],
        good[:-1],
        np.concatenate([good, [1]]),
        good.astype(np.float64),
        _bad(good, i0=0x12345678),  # magic
        _bad(good, i1=2),  # version
        _bad(good, i2=0),  # S
        _bad(good, i3=1),  # K
        _bad(good, i5=1),  # reserved
        _bad(good, **{f"i{8}": B}),  # bucket out of range
        _bad(good, **{f"i{counts_at}": 0}),  # zero count
        _bad(good, **{f"i{counts_at}": -5}),
        _bad(good, **{f"i{counts_at}": 1 << 30}),  # row sum too large
        _bad(good, **{f"i{boost_at}": 7}),  # boost[0,0] != 0
        _bad(good, **{f"i{boost_at + 2}": 7}),  # e > n
        _bad(good, **{f"i{boost_at + 6}": -1}),
    ]
    for arr in bad_arrays:
        with pytest.raises(FormatError):
            CodingTables.from_array(arr)
    assert CodingTables.from_array(good).to_array().tolist() == good.tolist()


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
    tables = CodingTables.fit(synth_grids(rng, 3, 3, 16, 8, 8), 3, 16)
    g = synth_grids(rng, 1, 3, 16, 5, 7)[0][:2]
    header = Header(FP, 40, 33, "RGBA", 2, 5, 7, tile_size=4)
    data = pack(header, encode_indices(g, tables), b"alpha-bytes")
    h, ip, ap = unpack(data, expected_fingerprint=FP)
    assert h == header and ap == b"alpha-bytes"
    np.testing.assert_array_equal(decode_indices(ip, tables, h.num_stages, h.latent_height, h.latent_width), g)


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

    assert "residual_context_model" in graph and "context_model" in graph
    for module in sorted(graph):
        visit(module, [])
