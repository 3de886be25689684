"""Test files made on the spot with Pillow: images with EXIF (camera, GPS), large files
with a real signature, and an executable disguised as an image."""

from __future__ import annotations

import io
import os
import urllib.error
import urllib.request
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
