"""vqcodec bitstream: entropy coding of VQ index grids and the .vqc container.

Imports only numpy, constriction (lazily) and the standard library.
See FORMAT.md for the byte-level specification.
"""

from .container import DEFAULT_MAX_PIXELS, FORMAT_VERSION, KINDS, MAGIC, MODES, Header, pack, read_header, unpack
from .errors import (
    ChecksumError,
    CorruptDataError,
    FormatError,
    ImageTooLargeError,
    ModelMismatchError,
    NotVQCError,
    TruncatedError,
    UnsupportedVersionError,
)
from .residual_context_model import CodingTables, decode_indices, encode_indices

__all__ = [
    "CodingTables",
    "encode_indices",
    "decode_indices",
    "Header",
    "pack",
    "unpack",
    "read_header",
    "DEFAULT_MAX_PIXELS",
    "FORMAT_VERSION",
    "MAGIC",
    "MODES",
    "KINDS",
    "FormatError",
    "NotVQCError",
    "UnsupportedVersionError",
    "TruncatedError",
    "ChecksumError",
    "ModelMismatchError",
    "ImageTooLargeError",
    "CorruptDataError",
]
