"""De-duplication and ordering of messages by ``seq``, per conversation (no I/O).

The protocol allows duplicates and reordering on the wire (a retried push, the backlog
racing a live push, two senders' pushes crossing) and promises that ``seq`` is gapless.
So each conversation keeps a *cursor* -- every seq up to it has been handled -- and
holds back messages above a gap until the gap fills (from a late push or a
``message:sync``). A message at or below the cursor, or already held, is a duplicate.

A conversation whose cursor is not known yet (the client has not seen it) cannot tell a
duplicate from a gap: its messages wait until the cursor is seeded (from the server's
``ackedSeq`` in ``conversation:list``, which is where the server's own backlog starts).
Once ``assume_new_start_at_zero`` is set (after that listing), an unknown conversation
is a new one and starts at 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard_client.models import Message


@dataclass(slots=True)
class _Log:
    cursor: int | None = None
    # seq -> message above the cursor, or None for the client's own send (seen, not shown).
    held: dict[int, Message | None] = field(default_factory=dict)


class Inbox:
    def __init__(self, cursors: dict[str, int] | None = None) -> None:
        self._logs: dict[str, _Log] = {}
        self.duplicates = 0
        self.assume_new_start_at_zero = False
        for conversation_id, seq in (cursors or {}).items():
            self._logs[conversation_id] = _Log(cursor=max(0, int(seq)))

    # ------------------------------------------------------------------ reading state
    def cursor(self, conversation_id: str) -> int | None:
        log = self._logs.get(conversation_id)
        return None if log is None else log.cursor

    @property
    def cursors(self) -> dict[str, int]:
        """Every known conversation's cursor: save it to resume a later client from it."""
        return {c: log.cursor for c, log in self._logs.items() if log.cursor is not None}

    def gaps(self) -> dict[str, int]:
        """Conversations holding messages above a missing seq -> their cursor (a sync from
        there fills the gap)."""
        return {
            c: log.cursor for c, log in self._logs.items() if log.cursor is not None and log.held
        }

    def has_gap(self, conversation_id: str) -> bool:
        log = self._logs.get(conversation_id)
        return log is not None and log.cursor is not None and bool(log.held)

    def unseeded(self) -> list[str]:
        return [c for c, log in self._logs.items() if log.cursor is None]

    # ------------------------------------------------------------------ updating
    def seed(self, conversation_id: str, seq: int) -> list[Message]:
        """Sets the cursor of a conversation not known yet (a known one keeps its own:
        it is at least as fresh). Returns the held messages this releases."""
        log = self._logs.setdefault(conversation_id, _Log())
        if log.cursor is not None:
            return []
        log.cursor = max(0, seq)
        for held in [s for s in log.held if s <= log.cursor]:
            del log.held[held]  # already handled before (at or below the acked seq)
            self.duplicates += 1
        return self._release(log)

    def accept(self, message: Message) -> list[Message]:
        """Takes a message from the wire; returns the messages now deliverable, in seq
        order (empty for a duplicate or while a gap is open)."""
        log = self._log_for(message.conversation_id, message.seq)
        if (log.cursor is not None and message.seq <= log.cursor) or message.seq in log.held:
            self.duplicates += 1
            return []
        log.held[message.seq] = message
        return self._release(log)

    def record_own(self, conversation_id: str, seq: int) -> list[Message]:
        """The client's own send got ``seq``: counts as handled (its push to the sender's
        other devices, or the backlog, must not show it again here)."""
        log = self._log_for(conversation_id, seq)
        if (log.cursor is not None and seq <= log.cursor) or seq in log.held:
            return []
        log.held[seq] = None
        return self._release(log)

    def seed_unseeded_at_zero(self) -> dict[str, list[Message]]:
        """After the listing: conversations still unknown are new ones (cursor 0)."""
        self.assume_new_start_at_zero = True
        return {c: self.seed(c, 0) for c in self.unseeded()}

    def _log_for(self, conversation_id: str, seq: int) -> _Log:
        log = self._logs.get(conversation_id)
        if log is None:
            log = self._logs[conversation_id] = _Log()
        if log.cursor is None and (seq == 1 or self.assume_new_start_at_zero):
            log.cursor = 0  # seq 1 cannot have a predecessor; a new conversation starts at 0
        return log

    @staticmethod
    def _release(log: _Log) -> list[Message]:
        out: list[Message] = []
        if log.cursor is None:
            return out
        while log.cursor + 1 in log.held:
            log.cursor += 1
            message = log.held.pop(log.cursor)
            if message is not None:
                out.append(message)
        return out
