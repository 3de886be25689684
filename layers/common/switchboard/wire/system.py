"""System entries: a membership change written into a conversation's seq stream as a
message with an empty body, so history tells the story ("bob left")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from switchboard.protocol import Omitted, WireData

SystemKind = Literal["left", "removed", "added", "role", "title"]


class SystemEvent(WireData):
    """What changed. ``by`` made the change (for ``left``, the leaver)."""

    kind: SystemKind
    by: str
    userIds: Omitted[list[str]] = Field(
        default=None, description="added: who; left/removed/role: the one member concerned"
    )
    role: Omitted[Literal["owner", "admin", "member"]] = Field(
        default=None, description="role: the member's new role; left: a new owner, if any"
    )
    owner: Omitted[str] = Field(
        default=None, description="left: the member who became owner as the owner left"
    )
    title: Omitted[str] = None
