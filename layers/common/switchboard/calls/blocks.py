"""A block made while both users are in one call (``user:block`` in the message function):
the pair is marked apart on the call item, so the signaling function relays no more SDP
or ICE candidates between them, with no read of anyone's block list per relayed frame
(it reads the call item anyway). Calls never put a blocked pair together in the first
place (CallService checks every pair on ``call:initiate`` and ``call:invite``)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from switchboard.calls.model import separate
from switchboard.calls.repository import StaleCall
from switchboard.observability import logger

if TYPE_CHECKING:
    from switchboard.calls.repository import CallRepository

SAVE_ATTEMPTS = 6


def keep_apart(calls: CallRepository, blocker: str, blocked: str, now_ms: int) -> bool:
    """Marks the pair apart in the blocker's live call if ``blocked`` is in it too; True if
    it is (then or already). Costs one GetItem (the blocker's active-call item) when the
    blocker is in no call; the call's GetItem and a versioned write when both are in it."""
    call_id = calls.active_call_id(blocker, now_ms)
    if call_id is None:
        return False
    for _ in range(SAVE_ATTEMPTS):
        call = calls.get(call_id)
        if call is None or not call.live:
            return False
        parts = [call.participants.get(blocker), call.participants.get(blocked)]
        if not all(p is not None and p.in_call for p in parts):
            return False
        after = separate(call, blocker, blocked)
        if after == call:
            return True
        try:
            calls.save(
                replace(after, version=call.version + 1),
                expected_version=call.version,
                now_ms=now_ms,
            )
        except StaleCall:
            continue
        logger.info("call pair kept apart", extra={"callId": call_id})
        return True
    # The call changed six times while we tried: the block itself is written; the pair is
    # refused together on any later invite. Logged so a lost marking is seen.
    logger.warning("call pair not marked apart", extra={"callId": call_id})
    return False
