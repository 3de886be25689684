"""Audio/video uploads (voice messages, call recordings): the container is parsed by a
maintained library and its duration taken from it, never from what the client says.

- Ogg (Opus, Vorbis...): ``mutagen`` reads the stream headers and the last page's
  granule position.
- WebM/Matroska: ``ebmlite`` (with its bundled Matroska schema) walks the EBML elements.
  A browser's MediaRecorder writes a live stream, so the Segment's ``Duration`` is often
  missing: the duration is then the latest block timestamp (cluster ``Timecode`` plus the
  block's relative timecode, scaled by ``TimecodeScale``).

Both libraries are the upload processor's dependencies only (functions/upload/
requirements.in), imported here lazily. The whole object is read into memory, so media
has a byte cap like images (``Limits.media_max_bytes``), besides the upload budget.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

OGG_TYPES = frozenset({"audio/ogg"})
WEBM_TYPES = frozenset({"audio/webm", "video/webm"})
MEDIA_TYPES = OGG_TYPES | WEBM_TYPES
AUDIO_TYPES = frozenset({"audio/ogg", "audio/webm"})

# Matroska TrackType values (the Matroska specification).
_VIDEO_TRACK, _AUDIO_TRACK = 1, 2


class InvalidMedia(Exception):
    """Not a readable container of the declared type (or no audio in it)."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    duration_ms: int
    has_audio: bool
    has_video: bool


def probe(data: bytes, content_type: str, *, max_duration_ms: int) -> MediaInfo:
    """The container's duration and tracks, or ``InvalidMedia``."""
    if content_type in OGG_TYPES:
        info = _probe_ogg(data)
    elif content_type in WEBM_TYPES:
        info = _probe_webm(data)
    else:
        raise InvalidMedia(f"{content_type} is not an audio/video container")
    if not info.has_audio:
        raise InvalidMedia("the container has no audio track")
    if info.duration_ms <= 0:
        raise InvalidMedia("the recording is empty (no duration)")
    if info.duration_ms > max_duration_ms:
        raise InvalidMedia(
            f"the recording lasts {info.duration_ms} ms, over the {max_duration_ms} ms limit"
        )
    return info


def _probe_ogg(data: bytes) -> MediaInfo:
    import mutagen
    from mutagen.ogg import OggFileType

    try:
        parsed = mutagen.File(io.BytesIO(data))
    except Exception as exc:  # mutagen raises many types for damaged input
        raise InvalidMedia(f"unreadable Ogg: {exc}"[:200]) from None
    if not isinstance(parsed, OggFileType) or parsed.info is None:
        raise InvalidMedia("not an Ogg audio stream mutagen can read")
    return MediaInfo(round(parsed.info.length * 1000), has_audio=True, has_video=False)


def _probe_webm(data: bytes) -> MediaInfo:
    import ebmlite

    schema = ebmlite.loadSchema("matroska.xml")
    try:
        document = schema.load(io.BytesIO(data))
        return _webm_info(document)
    except InvalidMedia:
        raise
    except Exception as exc:  # ebmlite raises IOError/ValueError/... on damaged input
        raise InvalidMedia(f"unreadable WebM: {exc}"[:200]) from None


def _webm_info(document: Any) -> MediaInfo:
    segment = next((e for e in document if e.name == "Segment"), None)
    if segment is None:
        raise InvalidMedia("no Matroska Segment")
    scale_ns = 1_000_000
    declared: float | None = None
    track_types: set[int] = set()
    latest = -1  # the latest block timestamp, in TimecodeScale units
    for element in segment:
        if element.name == "Info":
            for child in element:
                if child.name == "TimecodeScale":
                    scale_ns = int(child.value) or scale_ns
                elif child.name == "Duration":
                    declared = float(child.value)
        elif element.name == "Tracks":
            for entry in element:
                track_types.update(int(c.value) for c in entry if c.name == "TrackType")
        elif element.name == "Cluster":
            latest = max(latest, _cluster_latest(element))
    if declared is not None and declared > 0:
        units = declared
    elif latest >= 0:
        units = float(latest)
    else:
        raise InvalidMedia("no Duration and no media blocks")
    return MediaInfo(
        round(units * scale_ns / 1_000_000),
        has_audio=_AUDIO_TRACK in track_types,
        has_video=_VIDEO_TRACK in track_types,
    )


def _cluster_latest(cluster: Any) -> int:
    from ebmlite.decoding import readElementSize

    base = 0
    latest = -1
    for child in cluster:
        if child.name == "Timecode":
            base = int(child.value)
        elif child.name in ("SimpleBlock", "BlockGroup"):
            raw = child.value if child.name == "SimpleBlock" else _block_of(child)
            if raw is None:
                continue
            # A (Simple)Block starts with the track number (an EBML variable-size integer,
            # decoded by ebmlite) and a signed 16-bit timecode relative to the cluster's.
            stream = io.BytesIO(bytes(raw))
            readElementSize(stream)
            relative = struct.unpack(">h", stream.read(2))[0]
            latest = max(latest, base + relative)
    return latest


def _block_of(group: Any) -> bytes | None:
    return next((bytes(c.value) for c in group if c.name == "Block"), None)
