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

from bitstream import ContextModel, FormatError, Header, pack, unpack

CASES = int(os.environ.get("VQC_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("VQC_FUZZ_SEED", "20240607"))
FP = b"fuzzmdl\x01"


def _tables(rng, G, K):
    """Context-model tables fitted on random grids of two levels (not realistic, but every code is possible)."""
    grids = [[rng.integers(0, K, (6, 6, G)) for _ in range(3)] for _ in range(2)]
    return ContextModel.fit(grids, K, min(K, 8))


def _samples():
    """A few valid files: (data, tables, header, indices, alpha)."""
    rng = np.random.default_rng(SEED)
    out = []
    for mode, G, K, lh, lw, alpha in [
        ("RGB", 3, 16, 6, 8, b""),
        ("RGBA", 4, 256, 5, 5, bytes(rng.integers(0, 256, 37, dtype=np.uint8))),
        ("L", 2, 5, 9, 3, b""),
        ("LA", 2, 64, 1, 1, b"\x00"),
    ]:
        tables = _tables(rng, G, K)
        idx = rng.integers(0, K, (lh, lw, G))
        for j in range(1, lw):  # some runs, so the contexts vary
            same = rng.random((lh, G)) < 0.3
            idx[:, j] = np.where(same, idx[:, j - 1], idx[:, j])
        header = Header(FP, lw * 8 - 3, lh * 8, mode, kind="ecvq", level=1, latent_height=lh, latent_width=lw,
                        tile_size=int(rng.integers(0, 3)))
        data = pack(header, tables.encode(idx, 1), alpha)
        out.append((data, tables, header, idx, alpha))
    return out


def _decode_file(data, tables):
    """What the codec does with a file: unpack, check the level, decode."""
    header, index_payload, alpha = unpack(data, expected_fingerprint=FP)
    if header.kind != "ecvq" or header.level >= tables.num_qualities:
        raise FormatError("not a level the model has")
    idx = tables.decode(index_payload, header.latent_height, header.latent_width, header.level)
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
    """Corrupt index payloads fed straight to the context model's decoder (no CRC to save us)."""
    samples = _samples()

    def case(c):
        rng = np.random.default_rng([SEED, 1, c])
        data, tables, header, idx, _ = samples[c % len(samples)]
        payload = tables.encode(idx, 1)
        mutated = _mutate(rng, payload)
        try:
            out = tables.decode(mutated, idx.shape[0], idx.shape[1], 1)
        except FormatError:
            return "error"
        except Exception as exc:  # pragma: no cover
            pytest.fail(f"case {c}: {type(exc).__name__}: {exc} (payload {mutated.hex()})")
        assert out.shape == idx.shape and out.min() >= 0 and out.max() < tables.num_codes
        return "ok"

    _run(case, max(1, CASES // 2))
