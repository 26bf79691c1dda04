"""vqcodec bitstream: the .vqc container and the entropy coding of index grids (the context model).

Imports only numpy, constriction (lazily) and the standard library.
See FORMAT.md for the byte-level specification.
"""

from .container import (
    DEFAULT_MAX_PIXELS,
    FORMAT_VERSION,
    KINDS,
    MAGIC,
    MODES,
    Header,
    check_pixels,
    pack,
    read_header,
    unpack,
)
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
from .context_model import ContextModel

__all__ = [
    "ContextModel",
    "Header",
    "pack",
    "unpack",
    "read_header",
    "DEFAULT_MAX_PIXELS",
    "check_pixels",
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
