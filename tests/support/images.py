"""Test files made on the spot: images with EXIF (camera, GPS), large files with a real
signature, an executable disguised as an image, and decompression bombs of every image
type (built byte by byte from the formats' headers: a few hundred bytes each)."""

from __future__ import annotations

import io
import os
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from typing import Any

from PIL import Image

EXIF_MAKE, EXIF_ORIENTATION, EXIF_GPS = 0x010F, 0x0112, 0x8825


def png_with_exif(width: int = 640, height: int = 480) -> bytes:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    for x in range(0, width, 8):  # some structure, so it is not a trivially tiny file
        image.putpixel((x, x % height), (0, 0, 255))
    exif = Image.Exif()
    exif[EXIF_MAKE] = "SwitchboardTestCam"
    exif[EXIF_ORIENTATION] = 1
    exif[EXIF_GPS] = {1: "N", 2: (48.0, 51.0, 24.0)}
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif)
    return out.getvalue()


def png_plain(width: int = 320, height: int = 240) -> bytes:
    """A PNG without metadata (the processor keeps its bytes as they are)."""
    out = io.BytesIO()
    Image.effect_noise((width, height), 40).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def pdf_of_size(size: int) -> bytes:
    """A file that sniffs as PDF (its magic bytes) with random content after them."""
    head = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    return head + os.urandom(size - len(head))


def elf_executable(size: int = 4096) -> bytes:
    return b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + os.urandom(size - 20)


def exif_of(data: bytes) -> dict[int, Any]:
    with Image.open(io.BytesIO(data)) as image:
        return dict(image.getexif())


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


# ---------------------------------------------------------------------- bombs
def gif_bomb(
    width: int, height: int, frames: int, *, frame_size: tuple[int, int] = (1, 1), comment: bool
) -> bytes:
    """A GIF whose logical screen is ``width`` x ``height`` holding ``frames`` frames of
    ``frame_size`` (one pixel of LZW data each: a frame larger than that is truncated)."""
    out = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    if frames > 1:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    if comment:
        out += b"\x21\xfe\x05hello\x00"
    frame = (
        b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # graphic control: 0.1 s
        + b"\x2c"
        + struct.pack("<HHHHB", 0, 0, *frame_size, 0)
        + b"\x02\x02\x44\x01\x00"  # LZW: clear, index 0, end
    )
    return out + frame * frames + b"\x3b"


def gif_with_long_comment(subblocks: int = 3_500_000) -> bytes:
    """A 16x16 GIF with a comment of ``subblocks`` one-byte sub-blocks before its frame
    (7 MB by default, one presigned PUT): Pillow gathers it at ~44 bytes of memory per
    byte of file."""
    gif = gif_bomb(16, 16, 1, comment=False)
    end = 13 + 6  # logical screen + a two-colour palette
    return gif[:end] + b"\x21\xfe" + b"\x01x" * subblocks + b"\x00" + gif[end:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int, frames: int = 1) -> bytes:
    """A greyscale PNG (APNG when ``frames`` > 1, further frames 1x1) declaring
    ``width`` x ``height``, with one row of pixel data (a truncated image)."""
    out = b"\x89PNG\r\n\x1a\n" + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    )
    row = zlib.compress(bytes(width + 1))
    if frames == 1:
        return out + _png_chunk(b"IDAT", row) + _png_chunk(b"IEND", b"")
    seq = 0

    def fctl(w: int, h: int) -> bytes:
        nonlocal seq
        seq += 1
        return _png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq - 1, w, h, 0, 0, 1, 10, 0, 0))

    out += _png_chunk(b"acTL", struct.pack(">II", frames, 0)) + fctl(width, height)
    out += _png_chunk(b"IDAT", row)
    for _ in range(frames - 1):
        out += fctl(1, 1)
        out += _png_chunk(b"fdAT", struct.pack(">I", seq) + zlib.compress(b"\0\0"))
        seq += 1
    return out + _png_chunk(b"IEND", b"")


def _riff(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def _one_pixel_vp8l() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1, 1)).save(out, format="WEBP", lossless=True)
    data = out.getvalue()
    assert data[12:16] == b"VP8L"
    return data[20 : 20 + struct.unpack_from("<I", data, 16)[0]]


def webp_bomb(width: int, height: int, frames: int = 1) -> bytes:
    """A WebP declaring ``width`` x ``height``: animated (``frames`` frames of 1x1 on that
    canvas) or still (a lossless bitstream whose header claims that size)."""
    pixel = _one_pixel_vp8l()
    if frames == 1:
        bits = (
            (width - 1)
            | (height - 1) << 14
            | int.from_bytes(pixel[1:5], "little") & ~((1 << 28) - 1)
        )
        body = b"WEBP" + _riff(b"VP8L", pixel[:1] + bits.to_bytes(4, "little") + pixel[5:])
    else:
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        frame = bytes(12) + (100).to_bytes(3, "little") + b"\0" + _riff(b"VP8L", pixel)
        body = (
            b"WEBP"
            + _riff(b"VP8X", bytes([0x12, 0, 0, 0]) + canvas)  # animation + alpha flags
            + _riff(b"ANIM", bytes(6))
            + _riff(b"ANMF", frame) * frames
        )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_bomb(width: int, height: int, *, progressive: bool) -> bytes:
    """An 8x8 JPEG whose frame header (SOF0/SOF2) is rewritten to ``width`` x ``height``:
    the scan data covers one block (a truncated image)."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 20, 200)).save(out, format="JPEG", progressive=progressive)
    data = bytearray(out.getvalue())
    marker = b"\xff\xc2" if progressive else b"\xff\xc0"
    at = data.index(marker) + 5  # marker, length (2), precision (1): then height, width
    data[at : at + 4] = struct.pack(">HH", height, width)
    return bytes(data)


def jpeg_cmyk_bomb(width: int, height: int) -> bytes:
    """An 8x8 progressive CMYK JPEG with an EXIF Orientation (6: rotate), its frame header
    rewritten to ``width`` x ``height``: within the pixel budget at 6300 px, 4 bytes a pixel."""
    out = io.BytesIO()
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    Image.new("CMYK", (8, 8), (90, 20, 200, 0)).save(
        out, format="JPEG", progressive=True, exif=exif
    )
    data = bytearray(out.getvalue())
    at = data.index(b"\xff\xc2") + 5
    data[at : at + 4] = struct.pack(">HH", height, width)
    return bytes(data)


# (name, content type, bytes): every allowed image type, still and animated, tiny files
# whose headers promise more pixels than the processor's budget (40 Mpx a canvas, 100 Mpx
# over all frames) or more frames than it counts; 9000 px canvases (81 Mpx) are refused by
# the budget alone, below Pillow's own bomb check.
BOMBS: list[tuple[str, str, Callable[[], bytes]]] = [
    ("gif-animated-6300px-6-frames", "image/gif", lambda: gif_bomb(6300, 6300, 6, comment=True)),
    ("gif-animated-12-frames", "image/gif", lambda: gif_bomb(6300, 6300, 12, comment=True)),
    ("gif-still-65535px", "image/gif", lambda: gif_bomb(65535, 65535, 1, comment=False)),
    (
        "gif-frames-past-the-canvas",
        "image/gif",
        lambda: gif_bomb(16, 16, 3, frame_size=(6000, 6000), comment=True),
    ),
    ("gif-20000-frames", "image/gif", lambda: gif_bomb(64, 64, 20_000, comment=False)),
    ("gif-7-mb-comment", "image/gif", gif_with_long_comment),
    ("png-still-30000px", "image/png", lambda: png_bomb(30_000, 30_000)),
    ("apng-6000px-8-frames", "image/png", lambda: png_bomb(6000, 6000, frames=8)),
    ("webp-still-16384px", "image/webp", lambda: webp_bomb(16_384, 16_384)),
    ("webp-animated-6000px-6-frames", "image/webp", lambda: webp_bomb(6000, 6000, frames=6)),
    ("jpeg-baseline-60000px", "image/jpeg", lambda: jpeg_bomb(60_000, 60_000, progressive=False)),
    ("jpeg-progressive-60000px", "image/jpeg", lambda: jpeg_bomb(60_000, 60_000, progressive=True)),
    ("gif-still-9000px", "image/gif", lambda: gif_bomb(9000, 9000, 1, comment=False)),
    ("png-still-9000px", "image/png", lambda: png_bomb(9000, 9000)),
    ("webp-still-9000px", "image/webp", lambda: webp_bomb(9000, 9000)),
    ("jpeg-progressive-9000px", "image/jpeg", lambda: jpeg_bomb(9000, 9000, progressive=True)),
    ("jpeg-cmyk-progressive-6300px", "image/jpeg", lambda: jpeg_cmyk_bomb(6300, 6300)),
]


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A plain HTTP request to a presigned URL (what a browser's fetch does)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def put_parts(parts: list[dict[str, Any]], data: bytes, part_size: int) -> list[dict[str, Any]]:
    """PUTs each slice to its presigned part URL; returns [{partNumber, etag}]."""
    done = []
    for part in parts:
        n = part["partNumber"]
        chunk = data[(n - 1) * part_size : n * part_size]
        status, headers, _ = http(
            "PUT", part["url"], chunk, {"Content-Type": "application/octet-stream"}
        )
        assert status == 200, status
        done.append({"partNumber": n, "etag": headers["ETag"]})
    return done
