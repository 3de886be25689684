"""System entries: an event the server writes into a conversation's seq stream as a
message with an empty body, so history tells the story ("bob left", a call recorded)."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

from typing import Literal

from pydantic import Field

from switchboard.protocol import Omitted, WireData

SystemKind = Literal["left", "removed", "added", "role", "title"]


class SystemEntry(WireData):
    """What a system entry records (its message's ``body`` is empty). Membership changes
    have ``kind`` (``by`` made the change; for ``left``, the leaver); a call's recording
    has ``event`` "call:recording" (``state`` started/stopped, ``callId``, ``userId`` who
    recorded)."""

    kind: Omitted[SystemKind] = Field(default=None, description="a membership change")
    event: Omitted[str] = Field(default=None, description='"call:recording"')
    by: Omitted[str] = None
    userIds: Omitted[list[str]] = Field(
        default=None, description="added: who; left/removed/role: the one member concerned"
    )
    role: Omitted[Literal["owner", "admin", "member"]] = Field(
        default=None, description="role: the member's new role"
    )
    owner: Omitted[str] = Field(
        default=None, description="left: the member who became owner as the owner left"
    )
    title: Omitted[str] = None
    callId: Omitted[str] = None
    userId: Omitted[str] = None
    state: Omitted[str] = None


# The name membership.py uses for the entries it writes.
SystemEvent = SystemEntry
