"""Upload rules without AWS: the magic-bytes sniffer, part maths, keys, content types,
image processing (EXIF stripped, thumbnail) and the wire models."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError
from switchboard import images
from switchboard.dal.uploads import MAX_SHARES, UploadRecord
from switchboard.errors import BadRequest
from switchboard.filetypes import normalize, sniff
from switchboard.uploads import (
    S3_MAX_PART_BYTES,
    S3_MIN_PART_BYTES,
    Limits,
    checked_content_type,
    object_key,
    part_count,
    part_range,
    part_size_for,
    percent,
    upload_id_from_key,
)
from switchboard.wire.uploads import PartDone, UploadStart

from tests.support.images import (
    BOMBS,
    elf_executable,
    exif_of,
    gif_with_long_comment,
    jpeg_cmyk_bomb,
    pdf_of_size,
    png_with_exif,
)

MiB = 1024 * 1024


def encoded(fmt: str, mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format=fmt)
    return out.getvalue()


# ---------------------------------------------------------------------- sniffer
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (encoded("PNG"), "image/png"),
        (encoded("JPEG"), "image/jpeg"),
        (encoded("GIF", "P"), "image/gif"),
        (encoded("WEBP"), "image/webp"),
        (pdf_of_size(2000), "application/pdf"),
        ("plain text, naïve UTF-8\n".encode(), "text/plain"),
    ],
)
def test_sniffer_recognises_what_the_bytes_are(data: bytes, content_type: str) -> None:
    assert sniff(data).matches(content_type)


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (elf_executable(), "image/png"),  # an executable renamed .png
        (b"MZ\x90\x00" + bytes(200), "image/jpeg"),  # a Windows executable
        (encoded("PNG"), "image/jpeg"),  # a real image of another type
        (encoded("JPEG"), "application/pdf"),
        (b"\x00\x01binary\x00", "text/plain"),  # NUL bytes are not text
        (b"", "image/png"),
    ],
)
def test_sniffer_refuses_bytes_that_are_not_the_declared_type(data: bytes, declared: str) -> None:
    assert not sniff(data).matches(declared)


def test_text_sample_cut_inside_a_multibyte_character_is_still_text() -> None:
    assert sniff("é".encode() * 10 + "é".encode()[:1]).matches("text/plain")


def test_content_type_aliases_and_parameters_normalise() -> None:
    assert normalize("Image/JPG; charset=binary") == "image/jpeg"
    allowed = frozenset({"image/jpeg"})
    assert checked_content_type("image/pjpeg", allowed) == "image/jpeg"
    with pytest.raises(BadRequest):
        checked_content_type("application/x-msdownload", allowed)


# ---------------------------------------------------------------------- part maths
def test_part_plan_for_a_12_mib_file() -> None:
    size = 12 * MiB + 1
    part = part_size_for(size, 5 * MiB, 16)
    assert part == 5 * MiB and part_count(size, part) == 3
    assert part_range(3, part, size) == (10 * MiB, size)


def test_part_size_grows_to_respect_the_part_limit() -> None:
    size = 100 * MiB
    part = part_size_for(size, 5 * MiB, 16)
    assert part == 7 * MiB and part_count(size, part) == 15


@given(
    size=st.integers(min_value=1, max_value=5 * 1024**4),
    part_bytes=st.integers(min_value=1, max_value=64 * MiB),
    max_parts=st.integers(min_value=1, max_value=10_000),
)
def test_parts_cover_the_file_exactly_within_s3_rules(
    size: int, part_bytes: int, max_parts: int
) -> None:
    part = part_size_for(size, part_bytes, max_parts)
    count = part_count(size, part)
    assert S3_MIN_PART_BYTES <= part <= S3_MAX_PART_BYTES  # every part but the last
    assert count <= max_parts or part == S3_MAX_PART_BYTES
    ranges = [part_range(n, part, size) for n in range(1, count + 1)]
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert all(end - start == part for start, end in ranges[:-1])
    assert 0 < ranges[-1][1] - ranges[-1][0] <= part


@given(size=st.integers(min_value=1, max_value=10**12), data=st.data())
def test_percent_is_100_only_when_every_byte_is_there(size: int, data: st.DataObject) -> None:
    confirmed = data.draw(st.integers(min_value=0, max_value=size))
    value = percent(confirmed, size)
    assert 0 <= value <= 100
    assert (value == 100) == (confirmed == size)


# ---------------------------------------------------------------------- keys and ids
def test_keys_are_per_user_and_lead_back_to_the_upload() -> None:
    key = object_key("alice@example.com", "AbC_123-xyzAbC_123-xyz12")
    assert key.startswith("uploads/") and "alice" not in key
    assert object_key("bob", "AbC_123-xyzAbC_123-xyz12") != key
    assert upload_id_from_key(key) == "AbC_123-xyzAbC_123-xyz12"
    assert upload_id_from_key("thumbnails/x/AbC_123-xyzAbC_123-xyz12") is None
    assert upload_id_from_key("uploads/only-two") is None


def _dynamodb_size(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it against its 400 KB: names and values (a number
    at most 21 bytes, a set the sum of its members)."""

    def value(v: dict[str, Any]) -> int:
        ((kind, inner),) = v.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return min(21, len(inner.lstrip("-").replace(".", "")) // 2 + 2)
        if kind in ("SS", "NS"):
            return sum(value({kind[0]: x}) for x in inner)
        return len(str(inner))

    return sum(len(name.encode()) + value(v) for name, v in item.items())


def test_an_upload_shared_as_often_as_it_may_stays_far_below_the_item_limit() -> None:
    """MAX_SHARES conversations (ids as long as they come: ``dm_``/``cv_`` and 32 hex),
    each with the seq of its first share (as high as seqs get): a quarter of 400 KB at
    most, so the ``ops`` tokens and every other field keep their room."""
    ids = [f"cv_{n:032x}" for n in range(MAX_SHARES)]
    record = UploadRecord(
        uploadId="u" * 24,
        ownerId="o" * 64,
        key="uploads/" + "k" * 80,
        fileName="f" * 255,
        contentType="application/pdf",
        size=64 * 1024 * 1024,
        purpose="file",
        method="multipart",
        state="complete",
        createdAt=2**41,
        updatedAt=2**41,
        sharedIn=frozenset(ids),
        sharedSeq={c: 2**53 for c in ids},
    )
    item = record.to_item()
    assert len(item["sharedIn"]["SS"]) == MAX_SHARES
    assert _dynamodb_size(item) < 400 * 1024 // 4, _dynamodb_size(item)


def test_wire_models_refuse_bad_input() -> None:
    with pytest.raises(ValidationError):
        UploadStart.model_validate({"fileName": "a", "contentType": "image/png", "size": 0})
    with pytest.raises(ValidationError):
        UploadStart.model_validate(
            {"fileName": "a", "contentType": "image/png", "size": 1, "purpose": "other"}
        )
    with pytest.raises(ValidationError):
        PartDone.model_validate({"uploadId": "../../etc/passwd0000", "partNumber": 1, "etag": "a"})
    with pytest.raises(ValidationError):
        PartDone.model_validate({"uploadId": "a" * 24, "partNumber": 0, "etag": "a"})
    ok = PartDone.model_validate({"uploadId": "a" * 24, "partNumber": 2, "etag": '"ab12"'})
    assert ok.partNumber == 2


# ---------------------------------------------------------------------- images
def test_image_loses_its_exif_and_gets_a_thumbnail() -> None:
    photo = png_with_exif(800, 600)
    result = images.process(
        photo, "image/png", thumbnail_px=256, budget=images.PixelBudget(max_pixels=10**7)
    )
    assert result.cleaned is not None and exif_of(result.cleaned) == {}
    assert (result.width, result.height) == (800, 600)
    with Image.open(io.BytesIO(result.thumbnail)) as thumb:
        assert thumb.size == (256, 192)


def test_image_without_metadata_is_kept_byte_for_byte() -> None:
    plain = encoded("JPEG")
    assert (
        images.process(
            plain, "image/jpeg", thumbnail_px=16, budget=images.PixelBudget(max_pixels=10**7)
        ).cleaned
        is None
    )


def test_sideways_jpeg_is_turned_upright_before_its_orientation_tag_goes() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = io.BytesIO()
    Image.new("RGB", (60, 20)).save(out, format="JPEG", exif=exif)
    result = images.process(
        out.getvalue(), "image/jpeg", thumbnail_px=256, budget=images.PixelBudget(max_pixels=10**7)
    )
    assert result.cleaned is not None
    with Image.open(io.BytesIO(result.cleaned)) as upright:
        assert upright.size == (20, 60) and not upright.getexif()


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png"),  # a signature and garbage
        (encoded("PNG"), "image/jpeg"),  # decodes as another format
        (encoded("PNG", size=(400, 400)), "image/png"),  # over the pixel limit below
    ],
)
def test_invalid_images_are_refused(data: bytes, content_type: str) -> None:
    with pytest.raises(images.InvalidImage):
        images.process(
            data, content_type, thumbnail_px=64, budget=images.PixelBudget(max_pixels=100 * 100)
        )


# ---------------------------------------------------------------------- bombs
def animated(fmt: str, frames: int = 3, **metadata: object) -> bytes:
    out = io.BytesIO()
    first, *rest = [Image.new("RGB", (32, 24), (i * 60, 0, 0)) for i in range(frames)]
    first.save(out, format=fmt, save_all=True, append_images=rest, duration=100, **metadata)  # type: ignore[arg-type]
    return out.getvalue()


def frames_of(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return int(getattr(image, "n_frames", 1))


@pytest.mark.parametrize(
    ("fmt", "content_type", "metadata", "marker"),
    [
        ("GIF", "image/gif", {"comment": b"secret-comment"}, b"secret-comment"),
        ("PNG", "image/png", {"exif": b"Exif\x00\x00MM\x00*secret-exif"}, b"secret-exif"),
        ("WEBP", "image/webp", {"exif": b"Exif\x00\x00MM\x00*secret-exif"}, b"secret-exif"),
    ],
)
def test_an_animation_loses_its_metadata_but_keeps_every_frame_as_it_was(
    fmt: str, content_type: str, metadata: dict[str, object], marker: bytes
) -> None:
    data = animated(fmt, **metadata)
    assert marker in data and frames_of(data) == 3
    result = images.process(data, content_type, thumbnail_px=16, budget=images.PixelBudget())
    assert result.cleaned is not None and marker not in result.cleaned
    assert frames_of(result.cleaned) == 3 and (result.width, result.height) == (32, 24)
    # Not re-encoded: the stripped file is the original minus its metadata blocks
    assert len(data) - len(result.cleaned) < len(marker) + 64


def test_an_animation_without_metadata_is_kept_byte_for_byte() -> None:
    data = animated("GIF")
    result = images.process(data, "image/gif", thumbnail_px=16, budget=images.PixelBudget())
    assert result.cleaned is None


@pytest.mark.parametrize(("name", "content_type", "make"), BOMBS, ids=[b[0] for b in BOMBS])
def test_every_bomb_is_refused_from_its_headers(name: str, content_type: str, make: Any) -> None:
    with pytest.raises(images.InvalidImage):
        images.process(make(), content_type, thumbnail_px=64, budget=images.PixelBudget())


# Processes one file and prints how far its peak resident memory grew (ru_maxrss, KiB),
# after a small image of the same type (Pillow's decoders loaded, caches warm).
_PEAK_GROWTH = """
import io, json, resource, sys
from PIL import Image
from switchboard import images
path, content_type, fmt = sys.argv[1:]
small = io.BytesIO()
Image.new("RGB", (40, 30)).save(small, format=fmt)
images.process(small.getvalue(), content_type, thumbnail_px=256, budget=images.PixelBudget())
data = open(path, "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    images.process(data, content_type, thumbnail_px=256, budget=images.PixelBudget())
    outcome = "processed"
except images.InvalidImage as exc:
    outcome = str(exc)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"outcome": outcome, "grownKiB": grown}))
"""


def peak_growth_mib(tmp_path: Path, data: bytes, content_type: str) -> tuple[str, float]:
    """Peak memory growth of processing ``data``, in a process of its own (a fresh peak)."""
    path = tmp_path / "image"
    path.write_bytes(data)
    fmt = content_type.removeprefix("image/").upper()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_GROWTH, str(path), content_type, fmt],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "layers" / "common")},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    return str(result["outcome"]), int(result["grownKiB"]) / 1024


def test_a_gif_full_of_comment_sub_blocks_is_refused_in_flat_memory(tmp_path: Path) -> None:
    # Given a 16x16 GIF carrying a comment of 3.5 M one-byte sub-blocks (7 MB of file)
    data = gif_with_long_comment()
    # When it is processed, Then it is refused before Pillow gathers the comment (which
    # costs ~44 bytes of memory per byte of file: ~300 MiB here)
    outcome, grown = peak_growth_mib(tmp_path, data, "image/gif")
    assert "GIF extension data" in outcome
    assert grown < 32, grown


def test_a_cmyk_jpeg_within_the_pixel_budget_is_refused_for_its_bytes(tmp_path: Path) -> None:
    # Given a 6300x6300 progressive CMYK JPEG with a rotating Orientation (under 40 Mpx,
    # 4 bytes a pixel: decoded, rotated and thumbnailed it peaked at 610 MiB)
    data = jpeg_cmyk_bomb(6300, 6300)
    # When it is processed, Then it is refused from its header, in flat memory
    outcome, grown = peak_growth_mib(tmp_path, data, "image/jpeg")
    assert "too many bytes a frame" in outcome
    assert grown < 32, grown


def test_the_budget_counts_every_frame() -> None:
    budget = images.PixelBudget(max_pixels=100, max_total_pixels=300, max_frames=5)
    budget.check(10, 10, 3)
    for width, height, frames in [(11, 10, 1), (10, 10, 4), (1, 1, 6)]:
        with pytest.raises(images.InvalidImage):
            budget.check(width, height, frames)


def test_a_put_url_lives_as_long_as_its_upload_needs() -> None:
    limits = Limits(
        allowed_types=frozenset(),
        max_bytes=1,
        multipart_threshold=1,
        part_bytes=1,
        max_parts=1,
        url_ttl=900,
        download_ttl=1,
        upload_ttl=1,
        min_bytes_per_second=64 * 1024,
    )
    assert limits.put_url_ttl(1) == 61
    assert limits.put_url_ttl(2 * MiB) == 60 + 32
    assert limits.put_url_ttl(100 * MiB) == 900
