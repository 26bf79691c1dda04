"""Unsigned LEB128 variable-length integers (little-endian base-128)."""

from __future__ import annotations

from .errors import CorruptDataError, TruncatedError

#: Longest varint accepted by the reader (5 bytes -> values below 2**35).
MAX_VARINT_BYTES = 5


def encode_uvarint(value: int) -> bytes:
    """Encode a non-negative int as LEB128 (7 bits per byte, low bits first)."""
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"varint value must be a non-negative int, got {value!r}")
    if value >= 1 << (7 * MAX_VARINT_BYTES):
        raise ValueError(f"varint value {value} is too large")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_uvarint(data: bytes | memoryview, pos: int, what: str) -> tuple[int, int]:
    """Read one varint at ``data[pos:]``; return ``(value, new_pos)``.

    Rejects encodings longer than :data:`MAX_VARINT_BYTES` and non-canonical
    ones (a redundant trailing zero byte), so that every value has exactly
    one encoding.  ``what`` names the field in error messages.
    """
    value = 0
    shift = 0
    n = len(data)
    for i in range(MAX_VARINT_BYTES):
        if pos >= n:
            raise TruncatedError(f"file is truncated: it ends inside the {what} field")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise CorruptDataError(f"the {what} field is not a canonical varint")
            return value, pos
        shift += 7
    raise CorruptDataError(f"the {what} field is longer than {MAX_VARINT_BYTES} bytes")
