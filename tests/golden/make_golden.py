"""Write the golden .vqc files of the current format version (only when the format version changes!).

    python tests/golden/make_golden.py --force

The files pin the byte format: tests/test_bitstream_golden.py checks that
every file still reads as recorded and decodes to its recorded indices, and
that files of the current version are reproduced byte for byte. Files of
earlier versions are kept as they are, since readers must still read them;
this script writes the current version's files from them (the same headers,
payloads and indices) and adds one ecvq file coded at a smaller size.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import bitstream  # noqa: E402


def _header(fields: dict) -> bitstream.Header:
    fields = dict(fields)
    if fields.get("model_fingerprint") is not None:
        fields["model_fingerprint"] = bytes.fromhex(fields["model_fingerprint"])
    return bitstream.Header(**fields)


def _entry(name: str, header: bitstream.Header, payload: bytes, alpha: bytes, source: dict) -> dict:
    data = bitstream.pack(header, payload, alpha)
    (HERE / name).write_bytes(data)
    fields = dataclasses.asdict(header)
    if header.model_fingerprint is not None:
        fields["model_fingerprint"] = header.model_fingerprint.hex()
    entry = {key: source[key] for key in ("tables", "indices") if key in source}
    return {"file": name, "version": bitstream.FORMAT_VERSION, **entry, "header": fields,
            "payload": payload.hex(), "alpha_payload": alpha.hex(), "size": len(data)}


def main() -> None:
    manifest = json.loads((HERE / "manifest.json").read_text())
    kept = [e for e in manifest if e.get("version", 3) < bitstream.FORMAT_VERSION]
    if "--force" not in sys.argv and len(kept) < len(manifest):
        sys.exit("golden files of this version exist; pass --force to overwrite them (only for a new format version)")
    written = []
    for source in kept:
        if source["header"]["kind"] == "learned":
            continue  # no longer written
        data = (HERE / source["file"]).read_bytes()
        header, payload, alpha = bitstream.unpack(data, max_pixels=None)
        stem = source["file"].removesuffix(".vqc")
        written.append(_entry(f"{stem}.v{bitstream.FORMAT_VERSION}.vqc", header, payload, alpha, source))
        if header.kind == "ecvq" and header.has_alpha:  # the same grid, as the coded half of an image twice the size
            big = dataclasses.replace(header, width=2 * header.width, height=2 * header.height,
                                      coded_width=header.width, coded_height=header.height)
            written.append(_entry(f"{stem}.resampled.v{bitstream.FORMAT_VERSION}.vqc", big, payload, alpha, source))
    (HERE / "manifest.json").write_text(json.dumps(kept + written, indent=2) + "\n")


if __name__ == "__main__":
    main()
