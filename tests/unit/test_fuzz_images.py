"""The bomb corpus, fuzzed (Hypothesis): declared sizes and frame counts drawn at random,
and bombs with bytes flipped or cut. Whatever comes in, ``images.process`` either refuses
it as ``InvalidImage`` or accepts an image within the budget - never another exception
(which the processor would take for a transient failure and retry)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from switchboard import images

from tests.support.images import BOMBS, gif_bomb, png_bomb, webp_bomb

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
# Small, so that whatever is accepted decodes in no time.
BUDGET = images.PixelBudget(max_pixels=250_000, max_total_pixels=1_000_000, max_frames=40)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def processed_within_budget(data: bytes, content_type: str) -> None:
    try:
        result = images.process(data, content_type, thumbnail_px=32, budget=BUDGET)
    except images.InvalidImage:
        return
    assert result.width * result.height <= BUDGET.max_pixels


sides = st.integers(min_value=1, max_value=3000)


@FUZZ
@given(width=sides, height=sides, frames=st.integers(min_value=1, max_value=60))
def test_declared_canvases_and_frames_are_refused_or_within_budget(
    width: int, height: int, frames: int
) -> None:
    for data, content_type in [
        (gif_bomb(width, height, frames, comment=True), "image/gif"),
        (png_bomb(width, height, frames), "image/png"),
        (webp_bomb(width, height, frames), "image/webp"),
    ]:
        processed_within_budget(data, content_type)


@FUZZ
@given(
    bomb=st.sampled_from(BOMBS),
    flips=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=4),
    cut=st.integers(min_value=0, max_value=200),
)
def test_bombs_with_bytes_flipped_or_cut_never_escape_as_another_error(
    bomb: tuple[str, str, object], flips: list[tuple[int, int]], cut: int
) -> None:
    _, content_type, make = bomb
    data = bytearray(make())  # type: ignore[operator]
    for at, value in flips:
        if at < len(data):
            data[at] = value
    processed_within_budget(bytes(data[: max(1, len(data) - cut)]), content_type)
