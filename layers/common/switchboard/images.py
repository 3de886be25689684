"""Image processing for uploads (Pillow): strip metadata (EXIF: camera, GPS position...)
and make a thumbnail. Imported only by the upload processor, whose package has Pillow.

Orientation is applied to the pixels before EXIF is dropped, so a photo taken sideways
stays upright without its Orientation tag.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from switchboard.filetypes import normalize

_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
# Metadata keys Pillow keeps in ``info`` and writes back out unless told otherwise.
_METADATA_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "icc_profile")


class InvalidImage(Exception):
    """The bytes do not decode as the declared image type (or are a decompression bomb)."""


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    width: int
    height: int
    cleaned: bytes | None  # the image without metadata; None if it had none (keep the original)
    thumbnail: bytes
    thumbnail_type: str


def process(
    data: bytes, content_type: str, *, thumbnail_px: int, max_pixels: int
) -> ProcessedImage:
    content_type = normalize(content_type)
    expected = _FORMATS.get(content_type)
    if expected is None:
        raise InvalidImage(f"{content_type} is not an image type this service processes")
    # Pillow's own bomb guard (a process-wide global, left alone) stays as a backstop;
    # the configured limit is checked on the header, before any pixel is decoded.
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != expected:
                raise InvalidImage(f"decodes as {img.format}, not {expected}")
            if img.width * img.height > max_pixels:
                raise InvalidImage("too many pixels")
            img.load()
            cleaned = _without_metadata(img, expected) if _has_metadata(img) else None
            thumbnail, thumbnail_type = _thumbnail(img, thumbnail_px)
            return ProcessedImage(img.width, img.height, cleaned, thumbnail, thumbnail_type)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise InvalidImage(str(exc) or type(exc).__name__) from None


def _has_metadata(img: Image.Image) -> bool:
    return bool(img.getexif()) or any(img.info.get(k) for k in _METADATA_KEYS)


def _without_metadata(img: Image.Image, fmt: str) -> bytes:
    upright = ImageOps.exif_transpose(img) or img
    out = io.BytesIO()
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": 92, "optimize": True}
    elif fmt == "GIF" and getattr(img, "n_frames", 1) > 1:
        # Animated GIFs keep their frames (GIF has no EXIF; comments are dropped).
        options = {"save_all": True, "loop": img.info.get("loop", 0)}
        upright = img
    elif fmt == "WEBP":
        options = {"quality": 90}
    # A fresh ``info`` (no exif/icc/xmp keys) is what keeps Pillow from writing them back.
    upright.info = {k: v for k, v in upright.info.items() if k in ("transparency", "duration")}
    upright.save(out, format=fmt, **options)
    return out.getvalue()


def _thumbnail(img: Image.Image, max_px: int) -> tuple[bytes, str]:
    thumb = ImageOps.exif_transpose(img) or img.copy()
    thumb.thumbnail((max_px, max_px))
    out = io.BytesIO()
    if thumb.mode in ("RGBA", "LA", "P") and ("transparency" in thumb.info or "A" in thumb.mode):
        thumb.convert("RGBA").save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    thumb.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue(), "image/jpeg"
