"""Fuzz tests: mutated .vqc files either decode to the original or raise FormatError.

Every case is seeded and reproducible.  CI runs a short pass (2000 file cases
+ 1000 payload cases); for a long run set the number of file cases::

    VQC_FUZZ_CASES=100000 pytest tests/test_bitstream_fuzz.py

(payload cases scale along, at half the number).  ``VQC_FUZZ_SEED`` changes
the seed.  Decoding work is bounded by the payload size (FORMAT.md), so no
case can hang; timings belong in the benchmarks, not here.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bitstream import CodingTables, FormatError, Header, decode_indices, encode_indices, pack, unpack

CASES = int(os.environ.get("VQC_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("VQC_FUZZ_SEED", "20240607"))
FP = b"fuzzmdl\x01"


def _tables(rng, S, K):
    B = 3
    boost = np.zeros((S, 5, 5), np.int64)
    for n in range(1, 5):
        boost[:, n, : n + 1] = 1 << 15
    return CodingTables(rng.integers(0, B, (S, K)), rng.integers(1, 500, (S, B, K)), boost)


def _samples():
    """A few valid files: (data, tables, header, indices, alpha)."""
    rng = np.random.default_rng(SEED)
    out = []
    for mode, S, K, S_used, lh, lw, alpha in [
        ("RGB", 3, 16, 3, 6, 8, b""),
        ("RGBA", 4, 256, 2, 5, 5, bytes(rng.integers(0, 256, 37, dtype=np.uint8))),
        ("L", 2, 5, 1, 9, 3, b""),
        ("LA", 2, 64, 2, 1, 1, b"\x00"),
    ]:
        tables = _tables(rng, S, K)
        idx = rng.integers(0, K, (S_used, lh, lw))
        for j in range(1, lw):  # some runs, so the neighbour boosts are exercised
            same = rng.random((S_used, lh)) < 0.3
            idx[:, :, j] = np.where(same, idx[:, :, j - 1], idx[:, :, j])
        header = Header(FP, lw * 8 - 3, lh * 8, mode, S_used, lh, lw, tile_size=int(rng.integers(0, 3)))
        data = pack(header, encode_indices(idx, tables), alpha)
        out.append((data, tables, header, idx, alpha))
    return out


def _decode_file(data, tables):
    """What the codec does with a file: unpack, check the stage count, decode."""
    header, index_payload, alpha = unpack(data, expected_fingerprint=FP)
    if header.num_stages > tables.num_stages:
        raise FormatError("more stages than the model has")
    idx = decode_indices(index_payload, tables, header.num_stages, header.latent_height, header.latent_width)
    return header, idx, alpha


def _mutate(rng, data: bytes, protect_crc: bool = False) -> bytes:
    b = bytearray(data)
    kind = int(rng.integers(0, 7))
    n = len(b)
    if kind == 0:  # flip 1-4 bits
        for _ in range(int(rng.integers(1, 5))):
            i = int(rng.integers(0, n))
            b[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(0, n))]
    elif kind == 2:  # insert random bytes
        i = int(rng.integers(0, n + 1))
        b[i:i] = rng.bytes(int(rng.integers(1, 9)))
    elif kind == 3:  # delete a run
        i = int(rng.integers(0, n))
        del b[i : i + int(rng.integers(1, 9))]
    elif kind == 4:  # overwrite with random bytes
        i = int(rng.integers(0, n))
        k = int(rng.integers(1, 9))
        b[i : i + k] = rng.bytes(len(b[i : i + k]))
    elif kind == 5:  # mutate the header region only
        i = int(rng.integers(0, min(n, 24)))
        b[i] = int(rng.integers(0, 256))
    else:  # random junk, sometimes with a valid magic + version
        b = bytearray(rng.bytes(int(rng.integers(0, 64))))
        if rng.random() < 0.5:
            b[:4] = data[:4]
    return bytes(b)


def _run(case_fn, cases):
    outcomes = {"ok": 0, "error": 0}
    for c in range(cases):
        outcomes[case_fn(c)] += 1
    return outcomes


def test_fuzz_mutated_files():
    samples = _samples()
    for data, tables, header, idx, alpha in samples:  # sanity: originals decode
        h, out, a = _decode_file(data, tables)
        assert h == header and a == alpha
        np.testing.assert_array_equal(out, idx)

    def case(c):
        rng = np.random.default_rng([SEED, c])
        data, tables, header, idx, alpha = samples[c % len(samples)]
        mutated = _mutate(rng, data)
        try:
            h, out, a = _decode_file(mutated, tables)
        except FormatError as exc:
            assert str(exc)
            return "error"
        except Exception as exc:  # pragma: no cover - the failure we look for
            pytest.fail(f"case {c}: {type(exc).__name__}: {exc} (input {mutated.hex()})")
        assert h == header and a == alpha, f"case {c}: accepted a changed file"
        np.testing.assert_array_equal(out, idx)
        return "ok"

    outcomes = _run(case, CASES)
    assert outcomes["error"] > 0.9 * CASES


def test_fuzz_index_payload_without_crc():
    """Corrupt index payloads fed straight to decode_indices (no CRC to save us)."""
    samples = _samples()

    def case(c):
        rng = np.random.default_rng([SEED, 1, c])
        data, tables, header, idx, _ = samples[c % len(samples)]
        payload = encode_indices(idx, tables)
        mutated = _mutate(rng, payload)
        try:
            out = decode_indices(mutated, tables, *idx.shape)
        except FormatError:
            return "error"
        except Exception as exc:  # pragma: no cover
            pytest.fail(f"case {c}: {type(exc).__name__}: {exc} (payload {mutated.hex()})")
        assert out.shape == idx.shape and out.min() >= 0 and out.max() < tables.num_codes
        return "ok"

    _run(case, max(1, CASES // 2))
