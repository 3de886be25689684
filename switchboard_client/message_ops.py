"""Edits, deletes, reactions, threads and mute (``client.messages``), and the change
stream: the client keeps, per conversation, the change number up to which it has applied
every change, and after each reconnect reads only what changed since
(``message:changes``), delivering each changed message as a ``message:changed`` event (the
message as it is now: apply it if its ``version`` is above yours). A change push moves the
cursor only over consecutive changes, so a lost push is read on the next resume. See
docs/protocol.md, "Message operations"."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from switchboard_client import wire
from switchboard_client.errors import Forbidden, NotFound
from switchboard_client.models import Event, Message

T = TypeVar("T", bound=wire.WireModel)

CHANGE_PUSHES = frozenset({"message:updated", "message:deleted", "message:reactions"})
# An event of the client's own: a message read from the change stream on resume.
MESSAGE_CHANGED = "message:changed"
# ... and one telling the application to re-read a conversation's history (its changes
# after the cursor expired).
CHANGES_RESET = "client:changes-reset"
CHANGE_PAGES = 20  # per conversation per resume


class Requester(Protocol):
    async def call(
        self,
        model: type[T],
        action: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> T: ...


class MessageOps:
    def __init__(
        self,
        client: Requester,
        emit: Callable[[Event], None],
        change_cursors: Mapping[str, int] | None = None,
    ) -> None:
        """``change_cursors``: saved ``change_cursors`` of an earlier run (as ``cursors``
        are for messages): the first resume reads the changes since."""
        self._client = client
        self._emit = emit
        self.change_cursors: dict[str, int] = dict(change_cursors or {})
        self._last_change: dict[str, int] = {}

    # ------------------------------------------------------------------ actions
    async def edit(self, conversation_id: str, seq: int, body: str) -> wire.MessageUpdated:
        """Your message's new body (within the edit window; the same body again is a
        no-op, so a retry is safe)."""
        data = {"conversationId": conversation_id, "seq": seq, "body": body}
        return await self._client.call(wire.MessageUpdated, "message:edit", data)

    async def delete(self, conversation_id: str, seq: int) -> wire.MessageDeleted:
        """Deletes your message for everyone (a tombstone keeps its seq)."""
        data = {"conversationId": conversation_id, "seq": seq}
        return await self._client.call(wire.MessageDeleted, "message:delete", data)

    async def react(
        self, conversation_id: str, seq: int, emoji: str, *, on: bool = True
    ) -> wire.MessageReactions:
        """Adds (``on``) or takes back one emoji reaction; idempotent."""
        data = {"conversationId": conversation_id, "seq": seq, "emoji": emoji, "on": on}
        return await self._client.call(wire.MessageReactions, "message:react", data)

    async def thread(
        self, conversation_id: str, parent_seq: int, *, after_seq: int = 0, limit: int = 50
    ) -> wire.ThreadPage:
        """A thread's parent and its replies after ``after_seq``, oldest first."""
        data = {
            "conversationId": conversation_id,
            "parentSeq": parent_seq,
            "afterSeq": after_seq,
            "limit": limit,
        }
        return await self._client.call(wire.ThreadPage, "thread:history", data)

    async def changes(
        self, conversation_id: str, after_change: int, *, limit: int = 100
    ) -> wire.ChangesPage:
        """One page of the change stream (what ``sync_changes`` reads)."""
        data = {"conversationId": conversation_id, "afterChange": after_change, "limit": limit}
        return await self._client.call(wire.ChangesPage, "message:changes", data)

    async def mute(self, conversation_id: str, *, until: int | None = None) -> wire.MuteState:
        """No notification or e-mail from this conversation until ``until`` (epoch ms), or
        until unmuted."""
        data: dict[str, Any] = {"conversationId": conversation_id, "muted": True}
        if until is not None:
            data["until"] = until
        return await self._client.call(wire.MuteState, "conversation:mute", data)

    async def unmute(self, conversation_id: str) -> wire.MuteState:
        data = {"conversationId": conversation_id, "muted": False}
        return await self._client.call(wire.MuteState, "conversation:mute", data)

    # ------------------------------------------------------------------ the change stream
    def seen(self, conversation_id: str, last_change: int) -> None:
        """A conversation's ``lastChange`` as the server reports it (conversation:list,
        sync). First sight: the application reads its history as it is now, so the cursor
        starts there."""
        self.change_cursors.setdefault(conversation_id, last_change)
        self._last_change[conversation_id] = max(
            last_change, self._last_change.get(conversation_id, 0)
        )

    def track(self, conversation_id: str) -> None:
        """A message of a conversation not seen in a listing (it started while connected):
        its changes are read from the start (at worst more than needed, never less)."""
        self.change_cursors.setdefault(conversation_id, 0)

    def note_push(self, data: Mapping[str, Any]) -> None:
        conversation_id, change = data.get("conversationId"), data.get("change")
        if not isinstance(conversation_id, str) or not isinstance(change, int):
            return
        if self.change_cursors.get(conversation_id) == change - 1:
            self.change_cursors[conversation_id] = change
        self._last_change[conversation_id] = max(change, self._last_change.get(conversation_id, 0))

    async def sync_changes(self) -> int:
        """Reads every conversation's changes after its cursor (only where the server's
        lastChange is past it); returns how many changed messages were delivered."""
        delivered = 0
        for conversation_id, cursor in list(self.change_cursors.items()):
            after = cursor
            for _ in range(CHANGE_PAGES):
                if after >= self._last_change.get(conversation_id, 0):
                    break
                try:
                    page = await self.changes(conversation_id, after)
                except (Forbidden, NotFound):
                    # left or removed: nothing more to follow there (the others go on)
                    self.change_cursors.pop(conversation_id, None)
                    self._last_change.pop(conversation_id, None)
                    break
                if page.reset:
                    self._emit(Event(CHANGES_RESET, {"conversationId": conversation_id}))
                for changed in page.messages:
                    raw = changed.model_dump(exclude_none=True)
                    self._emit(Event(MESSAGE_CHANGED, raw, Message.from_wire(raw)))
                    delivered += 1
                after = page.cursor
                self._last_change[conversation_id] = page.lastChange
                if not page.hasMore:
                    break
            if conversation_id in self.change_cursors:
                self.change_cursors[conversation_id] = after
        return delivered
