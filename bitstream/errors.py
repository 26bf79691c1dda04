"""Exception hierarchy of the bitstream package.

Every problem with a file or payload handed to a reader raises a subclass of
:class:`FormatError` (itself a :class:`ValueError`), so callers need to catch
only one class.  Messages say in plain words what is wrong.
"""

from __future__ import annotations

__all__ = [
    "FormatError",
    "NotVQCError",
    "UnsupportedVersionError",
    "TruncatedError",
    "ChecksumError",
    "ModelMismatchError",
    "ImageTooLargeError",
    "CorruptDataError",
]


class FormatError(ValueError):
    """Base class: the data is not a valid .vqc file / payload / table array."""


class NotVQCError(FormatError):
    """The data does not start with the .vqc magic bytes."""


class UnsupportedVersionError(FormatError):
    """The file uses a format version this reader does not understand."""


class TruncatedError(FormatError):
    """The data ends before the structure it announces is complete."""


class ChecksumError(FormatError):
    """The CRC-32 stored in the file does not match its contents."""


class ModelMismatchError(FormatError):
    """The file was made by a different model (fingerprint mismatch)."""


class ImageTooLargeError(FormatError):
    """The announced image size exceeds the configured pixel limit."""


class CorruptDataError(FormatError):
    """A field or payload holds a value that is impossible in a valid file."""
