"""Image processing for uploads (Pillow): strip metadata (EXIF: camera, GPS position...)
and make a thumbnail. Imported only by the upload processor, whose package has Pillow.

Decompression bombs: a file of a few hundred bytes can declare a canvas of 40 Mpx and
hundreds of frames, and Pillow composes every frame onto the full canvas. So the pixels
that decoding would produce are budgeted from the headers alone, before a pixel is
decoded: the canvas (``max_pixels``), the frame count (``max_frames``), and canvas x
frames (``max_total_pixels``). ``Image.open`` is lazy (headers only) except for WebP,
whose decoder reserves the whole canvas when it opens: its canvas is read from the RIFF
header first. GIF frames are counted here, stopping at the limit (Pillow's ``n_frames``
walks the whole file however many frames it holds), with each frame's extent (a frame
may reach past the declared canvas, and Pillow grows the canvas to hold it).

Only the first frame is ever decoded (the thumbnail). A still image with metadata is
re-encoded without it (one frame); an animation keeps its frames byte for byte and only
loses its metadata blocks (GIF comments and application blocks, PNG text/EXIF/ICC
chunks, WebP EXIF/XMP/ICCP chunks): no frame is re-encoded.

Orientation is applied to the pixels before EXIF is dropped, so a photo taken sideways
stays upright without its Orientation tag.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from switchboard.filetypes import normalize

_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
# Metadata keys Pillow keeps in ``info`` and writes back out unless told otherwise.
_METADATA_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "icc_profile")


class InvalidImage(Exception):
    """The bytes do not decode as the declared image type (or are a decompression bomb)."""


@dataclass(frozen=True, slots=True)
class PixelBudget:
    max_pixels: int = 40_000_000  # one frame's canvas
    max_total_pixels: int = 100_000_000  # canvas x frames: what decoding every frame costs
    max_frames: int = 1000
    # One frame's canvas in bytes (pixels x bands): a CMYK frame costs 4 bytes a pixel
    # and, decoded, rotated and thumbnailed, a 6300 px one peaked at 610 MiB.
    max_frame_bytes: int = 120_000_000

    def check(self, width: int, height: int, frames: int, bands: int = 1) -> None:
        if width * height > self.max_pixels:
            raise InvalidImage(f"too many pixels ({width}x{height})")
        if width * height * bands > self.max_frame_bytes:
            raise InvalidImage(f"too many bytes a frame ({width}x{height} x {bands} bands)")
        if frames > self.max_frames:
            raise InvalidImage(f"more than {self.max_frames} frames")
        if width * height * frames > self.max_total_pixels:
            raise InvalidImage(f"too many pixels over all frames ({width}x{height} x {frames})")


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    width: int
    height: int
    cleaned: bytes | None  # the image without metadata; None if it had none (keep the original)
    thumbnail: bytes
    thumbnail_type: str


def process(
    data: bytes, content_type: str, *, thumbnail_px: int, budget: PixelBudget
) -> ProcessedImage:
    content_type = normalize(content_type)
    expected = _FORMATS.get(content_type)
    if expected is None:
        raise InvalidImage(f"{content_type} is not an image type this service processes")
    # Pillow's own bomb guard (a process-wide global, left alone) stays as a backstop.
    try:
        if expected == "WEBP":
            budget.check(*_webp_canvas(data), 1)
        elif expected == "GIF":
            _check_gif_extensions(data)
        with Image.open(io.BytesIO(data)) as img:
            if img.format != expected:
                raise InvalidImage(f"decodes as {img.format}, not {expected}")
            width, height, frames = _extent(img, data, budget)
            budget.check(width, height, frames, len(img.getbands()))
            if frames > 1:
                cleaned = _strip_container_metadata(data, expected)
            else:
                cleaned = _without_metadata(img, expected) if _has_metadata(img) else None
            size = img.size  # before _thumbnail, whose JPEG draft mode decodes smaller
            thumbnail, thumbnail_type = _thumbnail(img, thumbnail_px)
            return ProcessedImage(*size, cleaned, thumbnail, thumbnail_type)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise InvalidImage(str(exc) or type(exc).__name__) from None
    except (ValueError, EOFError, IndexError, struct.error, MemoryError) as exc:
        # Malformed headers that Pillow reports some other way: still the file's fault,
        # never a reason for SQS to retry the record.
        raise InvalidImage(f"malformed image ({type(exc).__name__})") from None


def _extent(img: Image.Image, data: bytes, budget: PixelBudget) -> tuple[int, int, int]:
    """(width, height, frames) that decoding every frame would produce."""
    if img.format == "GIF":
        return _gif_extent(data, budget.max_frames)
    # PNG: the acTL chunk's count; WebP: the demuxer's (both read without decoding).
    return img.width, img.height, int(getattr(img, "n_frames", 1))


# ---------------------------------------------------------------------- containers
# GIF: header, logical screen, optional global colour table, then blocks: 0x21 extension
# (label + data sub-blocks), 0x2C image (descriptor, optional local colour table, LZW
# code size + sub-blocks), 0x3B trailer.
_GIF_IMAGE = 0x2C
_GIF_KEPT_APPLICATIONS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")  # the loop count


# Pillow gathers an extension's data (comments above all) sub-block by sub-block when it
# opens a GIF, at ~44 bytes of memory per byte of file: the blocks are walked first (flat
# memory) and a file with more extension data than any honest GIF carries is refused.
GIF_MAX_EXTENSION_BYTES = 64 * 1024
GIF_MAX_EXTENSION_SUBBLOCKS = 4096


def _gif_blocks(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(kind, start, end) of every block after the logical screen: the extension label of
    a 0x21 block, 0x2C for an image. Refuses extension data over the limits as soon as it
    gets there."""
    if len(data) < 13:
        raise InvalidImage("truncated GIF")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    extension_bytes = extension_subblocks = 0
    while pos < len(data) and data[pos] != 0x3B:
        start = pos
        if data[pos] == 0x21:
            kind, pos = data[pos + 1], pos + 2
        elif data[pos] == _GIF_IMAGE:
            flags = data[pos + 9]
            kind = _GIF_IMAGE
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        else:
            raise InvalidImage("malformed GIF block")
        while pos < len(data) and data[pos]:  # data sub-blocks, ended by a zero length
            if kind != _GIF_IMAGE:
                extension_bytes += data[pos]
                extension_subblocks += 1
                if (
                    extension_bytes > GIF_MAX_EXTENSION_BYTES
                    or extension_subblocks > GIF_MAX_EXTENSION_SUBBLOCKS
                ):
                    raise InvalidImage(
                        f"more than {GIF_MAX_EXTENSION_BYTES} bytes or"
                        f" {GIF_MAX_EXTENSION_SUBBLOCKS} sub-blocks of GIF extension data"
                    )
            pos += data[pos] + 1
        pos += 1
        yield kind, start, pos


def _check_gif_extensions(data: bytes) -> None:
    for _ in _gif_blocks(data):  # the walk refuses what is over the limits
        pass


def _gif_extent(data: bytes, max_frames: int) -> tuple[int, int, int]:
    """The canvas grown to hold every frame, and the frames (counting stops past the limit)."""
    width, height = struct.unpack_from("<HH", data, 6)
    frames = 0
    for kind, start, _ in _gif_blocks(data):
        if kind == _GIF_IMAGE:
            frames += 1
            left, top, w, h = struct.unpack_from("<HHHH", data, start + 1)
            width, height = max(width, left + w), max(height, top + h)
            if frames > max_frames:
                break
    return width, height, max(frames, 1)


def _strip_gif(data: bytes) -> bytes:
    end = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    kept = [data[:end]]
    for kind, start, stop in _gif_blocks(data):
        if kind == 0xFE:  # comment
            continue
        if kind == 0xFF and data[start + 3 : start + 14] not in _GIF_KEPT_APPLICATIONS:
            continue  # XMP and other application data
        kept.append(data[start:stop])
    return b"".join(kept) + b"\x3b"


# PNG: signature, then chunks (length, type, data, CRC); metadata lives in its own chunks.
_PNG_METADATA = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP", b"tIME"})


def _strip_png(data: bytes) -> bytes:
    kept, pos = [data[:8]], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        stop = pos + 12 + length
        if data[pos + 4 : pos + 8] not in _PNG_METADATA:
            kept.append(data[pos:stop])
        pos = stop
    return b"".join(kept)


# WebP: RIFF, then chunks (type, little-endian length, data padded to even); VP8X's flags
# say which optional chunks exist (ICC 0x20, EXIF 0x08, XMP 0x04).
_WEBP_METADATA = {b"ICCP": 0x20, b"EXIF": 0x08, b"XMP ": 0x04}


def _webp_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise InvalidImage("not a RIFF WebP file")
    pos = 12
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos + 4)
        stop = pos + 8 + length + (length & 1)
        yield data[pos : pos + 4], pos, stop
        pos = stop


def _webp_canvas(data: bytes) -> tuple[int, int]:
    """The canvas from the first chunk (VP8X, VP8L or VP8), before any decoder sees it."""
    for kind, pos, _ in _webp_chunks(data):
        body = data[pos + 8 : pos + 30]
        if kind == b"VP8X" and len(body) >= 10:
            return 1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little")
        if kind == b"VP8L" and len(body) >= 5:
            bits = int.from_bytes(body[1:5], "little")
            return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
        if kind == b"VP8 " and len(body) >= 10:
            w, h = struct.unpack_from("<HH", body, 6)
            return w & 0x3FFF, h & 0x3FFF
        break
    raise InvalidImage("no WebP image header")


def _strip_webp(data: bytes) -> bytes:
    kept: list[bytes] = []
    dropped = 0
    for kind, pos, stop in _webp_chunks(data):
        if kind in _WEBP_METADATA:
            dropped |= _WEBP_METADATA[kind]
            continue
        kept.append(data[pos:stop])
    if kept and kept[0][:4] == b"VP8X":
        kept[0] = kept[0][:8] + bytes([kept[0][8] & ~dropped & 0xFF]) + kept[0][9:]
    body = b"WEBP" + b"".join(kept)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _strip_container_metadata(data: bytes, fmt: str) -> bytes | None:
    """An animation without its metadata blocks, frames untouched (None if it had none)."""
    strip = {"GIF": _strip_gif, "PNG": _strip_png, "WEBP": _strip_webp}.get(fmt)
    if strip is None:
        return None
    stripped = strip(data)
    return None if stripped == data else stripped


# ---------------------------------------------------------------------- pixels
def _has_metadata(img: Image.Image) -> bool:
    return bool(img.getexif()) or any(img.info.get(k) for k in _METADATA_KEYS)


def _without_metadata(img: Image.Image, fmt: str) -> bytes:
    upright = ImageOps.exif_transpose(img) or img
    out = io.BytesIO()
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options = {"quality": 92, "optimize": True}
    elif fmt == "WEBP":
        options = {"quality": 90}
    # A fresh ``info`` (no exif/icc/xmp keys) is what keeps Pillow from writing them back.
    upright.info = {k: v for k, v in upright.info.items() if k in ("transparency", "duration")}
    upright.save(out, format=fmt, **options)
    return out.getvalue()


def _thumbnail(img: Image.Image, max_px: int) -> tuple[bytes, str]:
    if img.format == "JPEG":
        # libjpeg scales while decoding (1/2 .. 1/8): a big photo never lands whole.
        img.draft("RGB", (max_px, max_px))
    thumb = ImageOps.exif_transpose(img) or img.copy()
    thumb.thumbnail((max_px, max_px))
    out = io.BytesIO()
    if thumb.mode in ("RGBA", "LA", "P") and ("transparency" in thumb.info or "A" in thumb.mode):
        thumb.convert("RGBA").save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    thumb.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue(), "image/jpeg"
