"""Audio/video containers (switchboard/media.py): durations read by the parsers (mutagen
for Ogg, ebmlite for WebM) from real files ffmpeg made, refusals of what is not a
recording of the declared kind, and hostile variants fuzzed (Hypothesis): whatever comes
in, ``probe`` returns a duration within the bound or raises ``InvalidMedia`` - never
another exception (which the processor would take for a transient failure and retry)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard import media
from switchboard.filetypes import sniff

MEDIA = Path(__file__).parent.parent / "support" / "media"
SAMPLES = {
    # ffmpeg writing to a pipe, as a browser's MediaRecorder does: no Duration element,
    # so the duration is the last block's timestamp.
    "voice.webm": ("audio/webm", 1481, False),
    "voice.ogg": ("audio/ogg", 1500, False),
    "recording.webm": ("video/webm", 1981, True),
}
HOUR = 3600 * 1000
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_duration_comes_from_the_container(name: str) -> None:
    content_type, duration_ms, video = SAMPLES[name]
    data = (MEDIA / name).read_bytes()
    info = media.probe(data, content_type, max_duration_ms=HOUR)
    assert (info.duration_ms, info.has_audio, info.has_video) == (duration_ms, True, video)
    # And the magic bytes say the same container (audio/webm is video/webm's signature)
    assert sniff(data[:8192]).matches(content_type)


def test_what_is_not_a_recording_of_that_kind_is_refused() -> None:
    ogg = (MEDIA / "voice.ogg").read_bytes()
    webm = (MEDIA / "voice.webm").read_bytes()
    with pytest.raises(media.InvalidMedia, match="Segment"):
        media.probe(ogg, "audio/webm", max_duration_ms=HOUR)
    with pytest.raises(media.InvalidMedia, match="Ogg"):
        media.probe(webm, "audio/ogg", max_duration_ms=HOUR)
    with pytest.raises(media.InvalidMedia, match="over the 1000 ms limit"):
        media.probe(webm, "audio/webm", max_duration_ms=1000)
    with pytest.raises(media.InvalidMedia):
        media.probe(b"", "audio/webm", max_duration_ms=HOUR)
    with pytest.raises(media.InvalidMedia, match="not an audio/video container"):
        media.probe(webm, "application/pdf", max_duration_ms=HOUR)
    assert not sniff(ogg[:8192]).matches("audio/webm")


@pytest.mark.fuzz
@FUZZ
@given(
    name=st.sampled_from(sorted(SAMPLES)),
    flips=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=8),
    cut=st.integers(min_value=0, max_value=12_000),
)
def test_damaged_containers_never_escape_as_another_error(
    name: str, flips: list[tuple[int, int]], cut: int
) -> None:
    content_type, _, _ = SAMPLES[name]
    data = bytearray((MEDIA / name).read_bytes())
    for at, value in flips:
        if at < len(data):
            data[at] = value
    try:
        info = media.probe(bytes(data[: len(data) - cut]), content_type, max_duration_ms=HOUR)
    except media.InvalidMedia:
        return
    assert 0 < info.duration_ms <= HOUR and info.has_audio
