"""Regenerate the golden .vqc files (only when the format version changes!).

    python tests/golden/make_golden.py --force

The files pin the byte format: tests/test_bitstream_golden.py checks that they
still decode to the recorded headers and indices, and that encoding the same
indices reproduces them byte for byte.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import bitstream  # noqa: E402


def grids(rng, n, S, K, h, w):
    out = []
    maps = [rng.integers(0, K, K) for _ in range(S)]
    for _ in range(n):
        g = np.empty((S, h, w), np.int64)
        g[0] = np.kron(rng.integers(0, K, (h // 2 + 1, w // 2 + 1)), np.ones((2, 2), np.int64))[:h, :w]
        for s in range(1, S):
            g[s] = np.where(rng.random((h, w)) < 0.5, maps[s][g[s - 1]], rng.integers(0, K, (h, w)))
        out.append(g)
    return out


CASES = [
    # name, tables, mode, width, height, stages used, latent h, w, tile, alpha
    ("rgb_3x16", "tables_3x16", "RGB", 61, 48, 3, 6, 8, 0, b""),
    ("rgba_tiled_3x16", "tables_3x16", "RGBA", 40, 40, 2, 5, 5, 4, b"\x78\x9c\x03\x00\x00\x00\x00\x01"),
    ("l_2x300", "tables_2x300", "L", 24, 72, 2, 9, 3, 0, b""),
]


def main() -> None:
    if "--force" not in sys.argv and (HERE / "manifest.json").exists():
        sys.exit("golden files exist; pass --force to overwrite them (only for a new format version)")
    rng = np.random.default_rng(1234)
    tables = {
        "tables_3x16": bitstream.CodingTables.fit(grids(rng, 6, 3, 16, 10, 12), 3, 16, num_buckets=4),
        "tables_2x300": bitstream.CodingTables.fit(grids(rng, 6, 2, 300, 10, 12), 2, 300, num_buckets=4),
    }
    for name, t in tables.items():
        np.save(HERE / f"{name}.npy", t.to_array())
    manifest = []
    for name, tname, mode, width, height, S_used, lh, lw, tile, alpha in CASES:
        t = tables[tname]
        idx = grids(rng, 1, t.num_stages, t.num_codes, lh, lw)[0][:S_used]
        header = bitstream.Header(b"golden\x00\x01", width, height, mode, S_used, lh, lw, tile)
        data = bitstream.pack(header, bitstream.encode_indices(idx, t), alpha)
        (HERE / f"{name}.vqc").write_bytes(data)
        np.save(HERE / f"{name}.indices.npy", idx.astype(np.int16))
        manifest.append(
            {
                "file": f"{name}.vqc",
                "tables": f"{tname}.npy",
                "indices": f"{name}.indices.npy",
                "header": {
                    "model_fingerprint": header.model_fingerprint.hex(),
                    "width": width, "height": height, "mode": mode, "num_stages": S_used,
                    "latent_height": lh, "latent_width": lw, "tile_size": tile, "kind": "learned",
                },
                "alpha_payload": alpha.hex(),
                "size": len(data),
            }
        )
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
