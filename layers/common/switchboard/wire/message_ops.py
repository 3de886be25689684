"""Message operations: edit, delete, reactions, threads, the change stream, mute."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

import unicodedata
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from switchboard import limits
from switchboard.protocol import PushData, WireData, WireModel
from switchboard.wire.ids import ConversationId
from switchboard.wire.messaging import Message, Reaction

PositiveSeq = Annotated[int, Field(ge=1, le=2**53)]
Seq = Annotated[int, Field(ge=0, le=2**53)]
FOREVER = 2**53  # mutedUntil of a conversation muted with no end

# Code points an emoji is made of besides symbols (So) and modifiers (Sk, Mn, Me): the
# zero-width joiner and the tag characters of subdivision flags. Other format characters
# (bidi overrides...) would let a "reaction" disguise text: refused.
_JOINERS = {"\u200d"} | {chr(c) for c in range(0xE0020, 0xE0080)}
_KEYCAP_BASES = set("0123456789#*")


def _is_emoji(value: str) -> bool:
    """One emoji: one symbol (with its modifiers, variation selectors and keycap, or a
    ZWJ sequence of symbols, or tag characters), or a flag (two regional indicators).
    "👍👍" is two, refused."""
    bases = regional = 0
    previous = ""
    for ch in value:
        category = unicodedata.category(ch)
        if "\U0001f1e6" <= ch <= "\U0001f1ff":
            regional += 1
        elif category == "So" or (ch in _KEYCAP_BASES and "\u20e3" in value):
            if previous != "\u200d":  # joined to the one before: the same emoji
                bases += 1
        elif not (category in ("Sk", "Mn", "Me") or ch in _JOINERS):
            return False
        previous = ch
    return regional == 2 and bases == 0 if regional else bases == 1


class MessageRef(WireModel):
    conversationId: ConversationId
    seq: PositiveSeq


class MessageEdit(MessageRef):
    # Its length is checked by the service (payload_too_large), as for message:send.
    body: str = Field(
        json_schema_extra={"maxLength": limits.MAX_BODY_CHARS},
        description="longer than MAX_BODY_CHARS characters: payload_too_large",
    )


class MessageDelete(MessageRef):
    pass


class MessageReact(MessageRef):
    emoji: str = Field(
        min_length=1,
        max_length=limits.MAX_EMOJI_CHARS,
        description="one emoji (a ZWJ sequence, a flag, a keycap: one); not text",
    )
    on: bool = Field(default=True, description="false: take the reaction back")

    @field_validator("emoji")
    @classmethod
    def _one_emoji(cls, value: str) -> str:
        if not _is_emoji(value):
            raise ValueError("not an emoji")
        return value


class MessageChanges(WireModel):
    conversationId: ConversationId
    afterChange: Seq = Field(description="your change cursor: the lastChange you have applied")
    limit: int = Field(default=100, ge=1, le=200)


class ThreadHistory(WireModel):
    conversationId: ConversationId
    parentSeq: PositiveSeq
    afterSeq: Seq = Field(default=0, description="replies after this seq (oldest first)")
    limit: int = Field(default=50, ge=1, le=100)


class ConversationMute(WireModel):
    conversationId: ConversationId
    muted: bool = True
    until: PositiveSeq | None = Field(
        default=None, description="epoch ms; omitted with muted true: until unmuted"
    )

    @model_validator(mode="after")
    def _until_needs_muted(self) -> "ConversationMute":
        if self.until is not None and not self.muted:
            raise ValueError("until is for muting, not for unmuting")
        return self


# ---------------------------------------------------------------------- replies and pushes
class MessageUpdated(PushData):
    """An edit: the new body (``message:edit``'s reply, and pushed to the members)."""

    TYPE = "message:updated"
    conversationId: str
    seq: int
    body: str
    editedAt: int
    version: int
    change: int = Field(description="the conversation's change number of this edit")


class MessageDeleted(PushData):
    """A deletion: the message is a tombstone from now on (no body, no attachments)."""

    TYPE = "message:deleted"
    conversationId: str
    seq: int
    deletedAt: int
    version: int
    change: int


class MessageReactions(PushData):
    """A message's reactions after a change (``userId`` turned ``emoji`` ``on`` or off)."""

    TYPE = "message:reactions"
    conversationId: str
    seq: int
    reactions: list[Reaction]
    userId: str
    emoji: str
    on: bool
    version: int
    change: int


class ChangesPage(WireData):
    """The messages changed (edited, deleted, reacted to, replied to in a thread) after
    ``afterChange``, each as it is now, oldest change first."""

    conversationId: str
    messages: list[Message]
    cursor: int = Field(description="your new change cursor (ask again from it if hasMore)")
    lastChange: int
    hasMore: bool
    reset: bool = Field(
        description="true: changes after your cursor have expired; re-read the history"
    )


class ThreadPage(WireData):
    conversationId: str
    parent: Message
    messages: list[Message] = Field(description="replies after afterSeq, oldest first")
    hasMore: bool


class MuteState(WireData):
    conversationId: str
    mutedUntil: int | None = Field(description="epoch ms (2**53: forever); null: not muted")


ACTIONS: dict[str, type[WireModel]] = {
    "message:edit": MessageEdit,
    "message:delete": MessageDelete,
    "message:react": MessageReact,
    "message:changes": MessageChanges,
    "thread:history": ThreadHistory,
    "conversation:mute": ConversationMute,
}
REPLIES: dict[str, type[WireData]] = {
    "message:edit": MessageUpdated,
    "message:delete": MessageDeleted,
    "message:react": MessageReactions,
    "message:changes": ChangesPage,
    "thread:history": ThreadPage,
    "conversation:mute": MuteState,
}
PUSHES: tuple[type[PushData], ...] = (MessageUpdated, MessageDeleted, MessageReactions)
