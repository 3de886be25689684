"""What a file really is, from its first bytes (magic numbers), never from its name.

The signatures come from ``puremagic`` (a maintained, pure-Python signature database;
pinned in functions/upload/requirements.txt, imported only by the processor). Types
without a signature (plain text) are recognised by content rules here.
"""

from __future__ import annotations

from dataclasses import dataclass

# How many leading bytes the processor reads (puremagic's deepest common signatures, ZIP
# subtypes aside, are within the first few KB).
SNIFF_BYTES = 8192

# Names clients and browsers use for the same type.
ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "application/x-pdf": "application/pdf",
}

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# One container, several names: a signature tells the container, not whether it holds
# sound only (a WebM's magic bytes are the same for audio/webm and video/webm).
SAME_CONTAINER = {"audio/webm": "video/webm"}


def normalize(content_type: str) -> str:
    """``"Image/JPG; charset=x"`` -> ``"image/jpeg"``."""
    base = content_type.split(";", 1)[0].strip().lower()
    return ALIASES.get(base, base)


@dataclass(frozen=True, slots=True)
class Sniffed:
    candidates: frozenset[str]  # MIME types whose signature matches the bytes

    def matches(self, declared: str) -> bool:
        content_type = normalize(declared)
        return content_type in self.candidates or SAME_CONTAINER.get(content_type, "") in (
            self.candidates
        )

    @property
    def best(self) -> str:
        return min(self.candidates) if self.candidates else "application/octet-stream"


def sniff(head: bytes) -> Sniffed:
    """The types the leading bytes of a file are consistent with."""
    import puremagic  # the processor's dependency only (keeps it off the routes' cold path)

    candidates: set[str] = set()
    if head:
        try:
            matches = puremagic.magic_string(head)
        except puremagic.PureError:
            matches = []
        candidates = {normalize(m.mime_type) for m in matches if m.mime_type}
    if not candidates and _looks_like_text(head):
        candidates.add("text/plain")
    return Sniffed(frozenset(candidates))


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The sample may end inside a multi-byte character: only that is forgiven.
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True
