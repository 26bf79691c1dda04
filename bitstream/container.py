"""The ``.vqc`` container: header, sections, CRC-32.  See FORMAT.md."""

from __future__ import annotations

import dataclasses
import zlib

from ._varint import decode_uvarint, encode_uvarint
from .errors import (
    ChecksumError,
    CorruptDataError,
    ImageTooLargeError,
    ModelMismatchError,
    NotVQCError,
    TruncatedError,
    UnsupportedVersionError,
)

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "DEFAULT_MAX_PIXELS",
    "check_pixels",
    "MODES",
    "KINDS",
    "Header",
    "pack",
    "unpack",
    "read_header",
]

#: First three bytes of every .vqc file.
MAGIC = b"VQC"
#: Format version written by :func:`pack`.
FORMAT_VERSION = 4
#: Versions :func:`unpack` reads (version 1: learned payloads only, no kind byte; version 2: no ecvq kind;
#: version 3: ecvq files coded at the image's own size).
READABLE_VERSIONS = (1, 2, 3, 4)

#: Payload kinds, in the order of their code in the kind byte: residual-VQ indices, a lossless
#: image file, and the indices of a variable-rate ECVQ model at one quality level (version 3).
KINDS = ("learned", "lossless", "ecvq")
_MODEL_KINDS = frozenset({"learned", "ecvq"})
#: Kinds each version knows, by code (version 4 retired the learned kind).
_VERSION_KINDS = {1: ("learned",), 2: ("learned", "lossless"), 3: KINDS, 4: ("lossless", "ecvq")}
#: The one pixel limit, the size at which Pillow refuses an image (twice its ``MAX_IMAGE_PIXELS``, where it only
#: warns): files announcing more pixels are
#: refused before any allocation, and the codec refuses to read or code larger images (``max_pixels`` raises it).
DEFAULT_MAX_PIXELS = 178_956_970

#: Channel layouts, in the order of their code in the mode byte.
MODES = ("L", "LA", "RGB", "RGBA")
_ALPHA_MODES = frozenset({"LA", "RGBA"})

FINGERPRINT_SIZE = 8
CRC_SIZE = 4
#: Upper bounds on header fields (anything larger is a corrupt file).
MAX_DIMENSION = 1 << 24
MAX_STAGES = 255
MAX_LEVEL = 254
MAX_TILE_SIZE = 1 << 16
MAX_SECTION = 1 << 34


@dataclasses.dataclass(frozen=True)
class Header:
    """Everything a decoder needs to know besides the payloads.

    ``kind``: ``"learned"`` (residual-VQ codebook indices), ``"ecvq"`` (the
    indices of a variable-rate ECVQ model) or ``"lossless"`` (the pixels in a
    lossless image file; no model involved).
    ``model_fingerprint``: 8 bytes identifying the model weights and tables
    (model kinds only; None for lossless).
    ``width``, ``height``: original image size in pixels.
    ``mode``: channel layout, one of ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"``.
    ``num_stages``: number of quantiser stages coded (learned only; else 0).
    ``level``: the model's quality level, 0 = lowest (ecvq only; else 0).
    ``latent_height``, ``latent_width``: shape of the coded index grids (0 for lossless).
    ``tile_size``: latent tile size used by the tiled decoder, 0 = untiled.
    ``coded_width``, ``coded_height``: the size the model coded (ecvq only; 0 = the image's own size), at most
    the image's: a smaller one is upsampled to ``width`` x ``height`` when decoding.
    """

    model_fingerprint: bytes | None
    width: int
    height: int
    mode: str
    num_stages: int = 0
    latent_height: int = 0
    latent_width: int = 0
    tile_size: int = 0
    kind: str = "learned"
    level: int = 0
    coded_width: int = 0
    coded_height: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        learned = self.kind in _MODEL_KINDS
        fp = self.model_fingerprint
        if learned:
            if not isinstance(fp, (bytes, bytearray)) or len(fp) != FINGERPRINT_SIZE:
                raise ValueError(f"model_fingerprint must be {FINGERPRINT_SIZE} bytes, got {fp!r}")
            if isinstance(fp, bytearray):
                object.__setattr__(self, "model_fingerprint", bytes(fp))
        elif fp is not None:
            raise ValueError("a lossless header has no model fingerprint")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        low = 1 if learned else 0
        if self.kind == "ecvq":
            for name, full in (("coded_width", self.width), ("coded_height", self.height)):
                if getattr(self, name) == 0:
                    object.__setattr__(self, name, full)
        ecvq = self.kind == "ecvq"
        for name, lo, hi in (
            ("width", 1, MAX_DIMENSION),
            ("height", 1, MAX_DIMENSION),
            ("num_stages", int(self.kind == "learned"), MAX_STAGES if self.kind == "learned" else 0),
            ("level", 0, MAX_LEVEL if self.kind == "ecvq" else 0),
            ("latent_height", low, MAX_DIMENSION if learned else 0),
            ("latent_width", low, MAX_DIMENSION if learned else 0),
            ("tile_size", 0, MAX_TILE_SIZE if learned else 0),
            ("coded_width", int(ecvq), self.width if ecvq and isinstance(self.width, int) else 0),
            ("coded_height", int(ecvq), self.height if ecvq and isinstance(self.height, int) else 0),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{name} must be an int, got {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
        if self.latent_height > (self.coded_height or self.height) or self.latent_width > (self.coded_width or self.width):
            raise ValueError(
                f"latent grid {self.latent_height}x{self.latent_width} is larger than "
                f"the coded image {self.coded_height or self.height}x{self.coded_width or self.width}"
            )

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def quality(self) -> int:
        """The model level coded, 1..N: the stages coded, or the ECVQ level + 1 (0 for lossless)."""
        return self.level + 1 if self.kind == "ecvq" else self.num_stages

    @property
    def resampled(self) -> bool:
        """The model coded a smaller image than this file holds (ecvq only)."""
        return self.kind == "ecvq" and (self.coded_width, self.coded_height) != (self.width, self.height)

    @property
    def has_alpha(self) -> bool:
        return self.mode in _ALPHA_MODES

    @property
    def has_alpha_section(self) -> bool:
        """Model files keep alpha in a section of its own; a lossless payload holds it inside."""
        return self.has_alpha and self.kind in _MODEL_KINDS


def _encode_header(header: Header) -> bytes:
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    out.append(KINDS.index(header.kind))
    if header.kind == "lossless":
        out.append(MODES.index(header.mode))
        out += encode_uvarint(header.width) + encode_uvarint(header.height)
        return bytes(out)
    out += header.model_fingerprint
    out.append(MODES.index(header.mode))
    if header.kind == "learned":
        raise ValueError("learned (residual-VQ) files are no longer written")
    for v in (header.width, header.height, header.level, header.coded_width, header.coded_height,
              header.latent_height, header.latent_width, header.tile_size):
        out += encode_uvarint(v)
    return bytes(out)


def pack(header: Header, index_payload: bytes, alpha_payload: bytes = b"") -> bytes:
    """Assemble a .vqc file from a header and its payload sections.

    For a lossless header ``index_payload`` is the lossless image file, alpha included.
    """
    if not isinstance(header, Header):
        raise TypeError(f"header must be a bitstream.Header, got {type(header).__name__}")
    index_payload = bytes(index_payload)
    alpha_payload = bytes(alpha_payload)
    if alpha_payload and not header.has_alpha_section:
        raise ValueError(f"a {header.kind} {header.mode!r} file has no alpha section but an alpha payload was given")
    if len(index_payload) > MAX_SECTION or len(alpha_payload) > MAX_SECTION:
        raise ValueError("payload too large")
    out = bytearray(_encode_header(header))
    out += encode_uvarint(len(index_payload))
    if header.has_alpha_section:
        out += encode_uvarint(len(alpha_payload))
    out += index_payload
    out += alpha_payload
    out += (zlib.crc32(out) & 0xFFFFFFFF).to_bytes(CRC_SIZE, "little")
    return bytes(out)


def _check_magic(data: bytes) -> int:
    if len(data) < len(MAGIC) + 1:
        if MAGIC.startswith(bytes(data[: len(MAGIC)])) and len(data) > 0:
            raise TruncatedError(f"file is truncated: only {len(data)} bytes, too short for a .vqc header")
        raise NotVQCError(f"not a .vqc file: {len(data)} bytes, too short to hold the magic bytes")
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise NotVQCError(
            f"not a .vqc file: it starts with {bytes(data[:len(MAGIC)])!r}, expected {MAGIC!r}"
        )
    version = data[len(MAGIC)]
    if version not in READABLE_VERSIONS:
        raise UnsupportedVersionError(
            f"unsupported .vqc format version {version}; this reader understands versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (a newer vqcodec may read it)"
        )
    return version


def _parse_header(data: bytes) -> tuple[Header, int]:
    """Parse the fixed header; return ``(header, position after it)``."""
    version = _check_magic(data)
    pos = len(MAGIC) + 1
    kind = "learned"
    if version >= 2:
        if len(data) < pos + 1:
            raise TruncatedError("file is truncated: it ends inside the header")
        codes = [KINDS.index(k) for k in _VERSION_KINDS[version]]
        if data[pos] not in codes:
            valid = ", ".join(map(str, codes))
            raise CorruptDataError(
                f"payload-kind code {data[pos]} does not exist in format version {version} (codes {valid}): "
                "the version or kind byte is corrupt"
            )
        kind = KINDS[data[pos]]
        pos += 1
    fingerprint = None
    if kind in _MODEL_KINDS:
        if len(data) < pos + FINGERPRINT_SIZE + 1:
            raise TruncatedError("file is truncated: it ends inside the header")
        fingerprint = bytes(data[pos : pos + FINGERPRINT_SIZE])
        pos += FINGERPRINT_SIZE
    if len(data) < pos + 1:
        raise TruncatedError("file is truncated: it ends inside the header")
    mode_byte = data[pos]
    pos += 1
    if mode_byte >= len(MODES):
        raise CorruptDataError(f"invalid channel-layout code {mode_byte} (valid codes: 0-{len(MODES) - 1})")
    if kind == "lossless":
        names = ("width", "height")
    elif kind == "learned":
        names = ("width", "height", "num_stages", "latent_height", "latent_width", "tile_size")
    elif version >= 4:
        names = ("width", "height", "level", "coded_width", "coded_height", "latent_height", "latent_width", "tile_size")
    else:
        names = ("width", "height", "level", "latent_height", "latent_width", "tile_size")
    fields = {}
    for name in names:
        fields[name], pos = decode_uvarint(data, pos, name)
    if "coded_width" in fields and 0 in (fields["coded_width"], fields["coded_height"]):
        raise CorruptDataError("invalid header: the coded size must be at least 1x1")
    try:
        header = Header(model_fingerprint=fingerprint, mode=MODES[mode_byte], kind=kind, **fields)
    except ValueError as exc:
        raise CorruptDataError(f"invalid header: {exc}") from None
    return header, pos


def read_header(data: bytes) -> Header:
    """Parse only the header (cheap; for ``vqcodec info``).

    Does not verify the checksum or the payloads, nor apply a pixel limit.
    Raises :class:`FormatError` if the header itself is malformed.
    """
    return _parse_header(bytes(data[:72]))[0]  # a header is at most 54 bytes


def check_pixels(width: int, height: int, max_pixels: int | None = DEFAULT_MAX_PIXELS, what: str = "image") -> None:
    """Refuses (:class:`ImageTooLargeError`) an image of more than ``max_pixels`` pixels (None: the default)."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    if width * height > limit:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} = {width * height} pixels, more than the limit of {limit}; "
            "raise max_pixels (--max-pixels) if you trust it"
        )


def unpack(
    data: bytes,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    expected_fingerprint: bytes | None = None,
) -> tuple[Header, bytes, bytes]:
    """Parse and verify a .vqc file; return ``(header, index_payload, alpha_payload)``.

    For a lossless file the middle item is the lossless image file and the last is empty.

    ``max_pixels``: refuse images with more pixels than this (None = no limit).
    ``expected_fingerprint``: if given, refuse files made by another model.
    Raises a :class:`FormatError` subclass on any problem.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    header, pos = _parse_header(data)
    index_len, pos = decode_uvarint(data, pos, "index payload length")
    alpha_len = 0
    if header.has_alpha_section:
        alpha_len, pos = decode_uvarint(data, pos, "alpha payload length")
    end = pos + index_len + alpha_len
    if len(data) < end + CRC_SIZE:
        raise TruncatedError(
            f"file is truncated: the header announces {end + CRC_SIZE} bytes, only {len(data)} present"
        )
    if len(data) > end + CRC_SIZE:
        raise CorruptDataError(
            f"{len(data) - end - CRC_SIZE} unexpected bytes after the end of the file"
        )
    stored = int.from_bytes(data[end:], "little")
    actual = zlib.crc32(memoryview(data)[:end]) & 0xFFFFFFFF
    if stored != actual:
        raise ChecksumError(
            f"checksum mismatch: stored CRC-32 {stored:08x}, computed {actual:08x}; the file is corrupt"
        )
    if max_pixels is not None:
        check_pixels(header.width, header.height, max_pixels)
    if (
        expected_fingerprint is not None
        and header.kind in _MODEL_KINDS
        and header.model_fingerprint != bytes(expected_fingerprint)
    ):
        raise ModelMismatchError(
            f"file was made by model {header.model_fingerprint.hex()}, but this model is "
            f"{bytes(expected_fingerprint).hex()}; decode it with the model that made it"
        )
    index_payload = data[pos : pos + index_len]
    alpha_payload = data[pos + index_len : end]
    return header, index_payload, alpha_payload
