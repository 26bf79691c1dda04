"""Pillow plugin for ``.vqc`` files.

Importing this module (``import vqcodec`` does) registers the format, so that
``PIL.Image.open("photo.vqc")`` returns the image: opening reads only the
header (size and mode); ``load()`` decodes with the default model (or the
model given by :func:`set_model`). ``img.save("x.vqc")`` compresses with the
same model; pass ``quality=`` (0 .. 100) to ``save``. ``img.info["vqc_level"]`` is the level coded.

Errors follow Pillow's convention: what escapes ``open`` and ``load`` is an
``OSError`` (a corrupt file, a file made by another model, an unusable
model), with the codec's own exception kept as ``__cause__``.
"""

from __future__ import annotations

from PIL import Image, ImageFile

import bitstream

FORMAT = "VQC"
_model = None


def set_model(model) -> None:
    """Model (path or loaded model) used by Pillow for .vqc files; None = the default."""
    global _model
    _model = model


def _accept(prefix: bytes) -> bool:
    return prefix[:3] == bitstream.MAGIC


class VQCImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "vqcodec learned image codec"

    def _open(self) -> None:
        prefix = self.fp.read(64)
        try:
            header = bitstream.read_header(prefix)
        except bitstream.FormatError as exc:
            raise SyntaxError(str(exc)) from None
        self._mode = header.mode
        self._size = (header.width, header.height)
        self.info["vqc_kind"] = header.kind
        if header.kind != "lossless":
            self.info["vqc_level"] = header.quality  # the model level coded, 1..N
            self.info["vqc_model_fingerprint"] = header.model_fingerprint.hex()
        self._vqc_loaded = False
        self.tile = []

    def load(self):
        if not self._vqc_loaded:
            from vqcodec import codec

            if self.fp is None:
                raise OSError("cannot load: the .vqc file is closed")
            self.fp.seek(0)
            data = self.fp.read()
            try:
                decoded = codec.decompress(data, _model)
            except ValueError as exc:  # bitstream.FormatError, codec.InvalidModelError, ...
                raise OSError(f"cannot decode .vqc image: {exc}") from exc
            self.im = decoded.im
            self._mode = decoded.mode
            self._size = decoded.size
            self.readonly = 0
            self._vqc_loaded = True
            if self._exclusive_fp:
                self._close_fp()
            self.fp = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    from vqcodec import codec

    quality = im.encoderinfo.get("quality")
    fp.write(codec.compress(im, quality=quality, model=im.encoderinfo.get("model", _model)))


Image.register_open(FORMAT, VQCImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".vqc")
Image.register_mime(FORMAT, "image/x-vqc")
