"""Regenerate the golden .vqc files (only when the format version changes!).

    python tests/golden/make_golden.py --force

The files pin the byte format: tests/test_bitstream_golden.py checks that they
still decode to the recorded headers and indices, and that encoding the same
indices reproduces them byte for byte. The files of the retired "learned" kind
(residual-VQ payloads, no longer coded) are kept as they are: the container
still reads them, so that the codec can refuse them by name.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import bitstream  # noqa: E402
from bitstream.context_model import ContextModel  # noqa: E402


def ecvq_grids(rng, n, h, w, groups, codes):
    """Indices around the middle code, busier in blocks, with a few anywhere (escapes from a narrow window)."""
    out = []
    for _ in range(n):
        busy = np.kron(rng.random((h // 2 + 1, w // 2 + 1)) < 0.4, np.ones((2, 2), bool))[:h, :w, None]
        spread = np.where(busy, 3, 1)
        g = codes // 2 + np.rint(rng.standard_normal((h, w, groups)) * spread).astype(np.int64)
        g[rng.random((h, w, groups)) < 0.03] = rng.integers(0, codes)
        out.append(np.clip(g, 0, codes - 1))
    return out


ECVQ_CASES = [
    # name, mode, width, height, level, latent h, w, tile, alpha
    ("ecvq_rgb_l1", "RGB", 61, 48, 1, 6, 8, 0, b""),
    ("ecvq_rgba_l0", "RGBA", 40, 40, 0, 5, 5, 4, b"\x78\x9c\x03\x00\x00\x00\x00\x01"),
]

def write_case(name: str, tables_file: str, header, payload: bytes, alpha: bytes, idx: np.ndarray) -> dict:
    """Writes one ecvq golden file and its indices; returns its manifest entry."""
    data = bitstream.pack(header, payload, alpha)
    (HERE / f"{name}.vqc").write_bytes(data)
    np.save(HERE / f"{name}.indices.npy", idx.astype(np.int16))
    fields = dataclasses.asdict(header)
    fields["model_fingerprint"] = header.model_fingerprint.hex()
    entry = {"file": f"{name}.vqc", "tables": tables_file, "indices": f"{name}.indices.npy", "header": fields}
    return entry | {"alpha_payload": alpha.hex(), "size": len(data)}


def main() -> None:
    if "--force" not in sys.argv and (HERE / "manifest.json").exists():
        sys.exit("golden files exist; pass --force to overwrite them (only for a new format version)")
    rng = np.random.default_rng(1234)
    retired = [e for e in json.loads((HERE / "manifest.json").read_text()) if e["header"]["kind"] == "learned"]
    manifest = list(retired)
    # Variable-rate ECVQ files: 2 levels, 3 groups of 64 codes, windows of 8 codes (escapes included).
    context_model = ContextModel.fit([ecvq_grids(rng, 6, 10, 12, 3, 64) for _ in range(2)], 64, 8)
    np.savez(HERE / "ecvq_tables.npz", counts=context_model.counts, offsets=context_model.offsets, num_codes=64)
    for name, mode, width, height, level, lh, lw, tile, alpha in ECVQ_CASES:
        idx = ecvq_grids(rng, 1, lh, lw, 3, 64)[0]
        header = bitstream.Header(b"golden\x00\x02", width, height, mode, level=level, latent_height=lh,
                                  latent_width=lw, tile_size=tile, kind="ecvq")
        manifest.append(write_case(name, "ecvq_tables.npz", header, context_model.encode(idx, level), alpha, idx))
    # A lossless file: the payload is an image file, opaque to bitstream.
    payload = b"\x89PNG\r\n\x1a\n golden lossless payload"
    header = bitstream.Header(None, 33, 17, "RGBA", kind="lossless")
    data = bitstream.pack(header, payload)
    (HERE / "lossless_rgba.vqc").write_bytes(data)
    manifest.append(
        {
            "file": "lossless_rgba.vqc",
            "header": {"model_fingerprint": None, "width": 33, "height": 17, "mode": "RGBA", "kind": "lossless"},
            "payload": payload.hex(),
            "size": len(data),
        }
    )
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
