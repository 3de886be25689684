"""What people do to messages once sent: edit, delete, react, reply in a thread, quote;
and to conversations: mute. The change stream (dal/message_changes.py) tells a client that
was away what changed, without re-reading the history.

Rules:
- Only the sender edits (within ``edit_window_seconds`` of sending) or deletes a message.
  A deleted message is a tombstone that keeps its seq: its body, attachments (and their
  share to the conversation), reactions are gone for everyone, and history, sync,
  changes, search, quotes, notifications and e-mail show it as deleted.
- Reactions: any member; idempotent (on twice is once); at most ``max_reaction_kinds``
  distinct emoji per message and ``max_reactions_per_user`` of them by one user.
- Each edit, delete or reaction that changes something is pushed to the members and
  counts against one rate limit per user (the pushes it causes are bounded), in the
  change's own transaction; one that changes nothing is neither written nor pushed.
- Consent (membership.py) holds here as for a send: in a 1:1 conversation, an edit or a
  reaction of a user the other member blocked is refused with the send's own
  ``forbidden`` (a ConditionCheck on the blocker's block list, in the change's
  transaction). Deleting one's own message is not: it takes content away, brings none.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from switchboard import limits as protocol
from switchboard.dal.conversations import (
    Conversation,
    ConversationRepository,
    GuardRefused,
    StoredMessage,
)
from switchboard.dal.membership import BlockRepository
from switchboard.dal.message_changes import ChangeConflict, MessageChangeRepository
from switchboard.dal.ratelimits import RateLimit, RateLimiter
from switchboard.delivery import Delivery
from switchboard.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    conversation_not_found,
)
from switchboard.gateway import encode
from switchboard.membership import REFUSED, member_of
from switchboard.observability import logger
from switchboard.protocol import PushData, WireData, push, to_json
from switchboard.queues import RetryJob
from switchboard.router import Caller
from switchboard.wire import message_ops as wire
from switchboard.wire.messaging import Message, Notification, Quote

R = TypeVar("R", bound=PushData)
CHANGE_ATTEMPTS = 8
QUOTE_SNIPPET_CHARS = 100


@dataclass(frozen=True, slots=True)
class MessageOpsLimits:
    edit_window_seconds: int = protocol.EDIT_WINDOW_SECONDS
    max_reaction_kinds: int = protocol.MAX_REACTION_KINDS
    max_reactions_per_user: int = protocol.MAX_REACTIONS_PER_USER
    max_body_chars: int = protocol.MAX_BODY_CHARS
    # edits, deletes and reactions per user per window (each pushes to every member)
    ops_per_user: int = 60
    window_seconds: int = 10


class MessageOpsService:
    def __init__(
        self,
        conversations: ConversationRepository,
        delivery: Delivery,
        counters: RateLimiter,
        uploads_table: str,
        blocks: BlockRepository,
        *,
        limits: MessageOpsLimits = MessageOpsLimits(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conversations = conversations
        self.changes = MessageChangeRepository(conversations)
        self.delivery = delivery
        self.counters = counters
        self.uploads_table = uploads_table
        self.blocks = blocks
        self.limits = limits
        self._clock = clock
        self._sleep = sleep

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # ------------------------------------------------------------------ edit
    def edit(self, caller: Caller, data: wire.MessageEdit) -> wire.MessageUpdated:
        if len(data.body) > self.limits.max_body_chars:
            raise PayloadTooLarge(
                f"body is longer than {self.limits.max_body_chars} characters",
                details=[{"field": "data.body", "message": "too long"}],
            )

        def change(message: StoredMessage, now: int) -> StoredMessage | None:
            if message.sender_id != caller.user_id:
                raise Forbidden("only its sender may edit a message")
            if message.deleted_at:
                raise Conflict("the message was deleted")
            if now - message.created_at > self.limits.edit_window_seconds * 1000:
                raise Forbidden(
                    f"a message can be edited for {self.limits.edit_window_seconds} s after "
                    "it was sent"
                )
            if not data.body.strip() and not message.attachments:
                raise BadRequest("a message needs a body or an attachment")
            if data.body == message.body:
                return None  # a retried edit: nothing changes
            return replace(message, body=data.body, edited_at=now)

        def reply(message: StoredMessage) -> wire.MessageUpdated:
            return wire.MessageUpdated(
                conversationId=message.conversation_id,
                seq=message.seq,
                body=message.body,
                editedAt=message.edited_at or message.created_at,
                version=message.version,
                change=message.change,
            )

        return self._change(caller, data.conversationId, data.seq, change, reply)

    # ------------------------------------------------------------------ delete
    def delete(self, caller: Caller, data: wire.MessageDelete) -> wire.MessageDeleted:
        def change(message: StoredMessage, now: int) -> StoredMessage | None:
            if message.sender_id != caller.user_id:
                raise Forbidden("only its sender may delete a message")
            if message.deleted_at:
                return None  # deleted already (a retry): the tombstone stands
            return replace(message, body="", attachments=[], reactions={}, deleted_at=now)

        def revoke(before: StoredMessage) -> dict[str, dict[str, Any]]:
            return {
                f"unshare:{a['uploadId']}": self.changes.unshare_update(
                    self.uploads_table, str(a["uploadId"]), before.conversation_id
                )
                for a in before.attachments
            }

        def reply(message: StoredMessage) -> wire.MessageDeleted:
            return wire.MessageDeleted(
                conversationId=message.conversation_id,
                seq=message.seq,
                deletedAt=message.deleted_at or 0,
                version=message.version,
                change=message.change,
            )

        return self._change(
            caller, data.conversationId, data.seq, change, reply, revoke, reaches=False
        )

    # ------------------------------------------------------------------ reactions
    def react(self, caller: Caller, data: wire.MessageReact) -> wire.MessageReactions:
        me, emoji = caller.user_id, data.emoji

        def change(message: StoredMessage, _now: int) -> StoredMessage | None:
            if message.deleted_at:
                raise Conflict("the message was deleted")
            reactions = {e: list(users) for e, users in message.reactions.items()}
            users = reactions.get(emoji, [])
            if data.on:
                if me in users:
                    return None
                if emoji not in reactions and len(reactions) >= self.limits.max_reaction_kinds:
                    raise BadRequest(
                        f"a message has at most {self.limits.max_reaction_kinds} different "
                        "reactions"
                    )
                mine = sum(me in u for u in reactions.values())
                if mine >= self.limits.max_reactions_per_user:
                    raise BadRequest(
                        f"at most {self.limits.max_reactions_per_user} reactions of yours "
                        "per message"
                    )
                reactions[emoji] = [*users, me]
            else:
                if me not in users:
                    return None
                remaining = [u for u in users if u != me]
                if remaining:
                    reactions[emoji] = remaining
                else:
                    del reactions[emoji]
            return replace(message, reactions=reactions)

        def reply(message: StoredMessage) -> wire.MessageReactions:
            return wire.MessageReactions(
                conversationId=message.conversation_id,
                seq=message.seq,
                reactions=message.wire().reactions or [],
                userId=me,
                emoji=emoji,
                on=data.on,
                version=message.version,
                change=message.change,
            )

        return self._change(caller, data.conversationId, data.seq, change, reply)

    # ------------------------------------------------------------------ the one write path
    def _change(
        self,
        caller: Caller,
        conversation_id: str,
        seq: int,
        change: Callable[[StoredMessage, int], StoredMessage | None],
        reply: Callable[[StoredMessage], R],
        extra_guards: Callable[[StoredMessage], dict[str, dict[str, Any]]] | None = None,
        *,
        reaches: bool = True,
    ) -> R:
        """Reads the message and its conversation (one BatchGetItem), applies ``change``
        (None: nothing to do, the message as it is is the answer), writes it as the
        conversation's next change (one TransactWriteItems, with the rate limit) and
        pushes ``reply`` of the result to the members (one presence read): 3 DynamoDB
        calls. A change that changes nothing is neither written nor pushed. ``reaches``:
        the change brings something to the others (an edit, a reaction), so a 1:1
        member who blocked the caller refuses it, as a send (membership.py)."""
        rule = RateLimit(
            f"msgop#user#{caller.user_id}", self.limits.ops_per_user, self.limits.window_seconds
        )
        skip_guards: set[str] = set()
        for attempt in range(CHANGE_ATTEMPTS):
            conversation, message = self._read(caller, conversation_id, seq)
            now = self._now_ms()
            updated = change(message, now)
            if updated is None:
                return reply(message)
            updated = replace(
                updated, version=message.version + 1, change=conversation.last_change + 1
            )
            guards = {"limit": self.counters.update(rule, now)}
            if extra_guards is not None:
                guards |= {k: v for k, v in extra_guards(message).items() if k not in skip_guards}
            checks = self._consent_checks(caller, conversation) if reaches else {}
            try:
                self.changes.commit(
                    conversation, caller.user_id, message, updated, now, guards, checks
                )
            except GuardRefused as refused:
                if refused.label == "consent":
                    raise Forbidden(REFUSED) from None
                if refused.label == "limit":
                    raise RateLimited(
                        f"rate limit reached: at most {rule.limit} edits, deletes and "
                        f"reactions per {rule.window_seconds} s",
                        details={"retryAfterMs": rule.retry_after_ms(now)},
                    ) from None
                # An attachment's upload item is gone: nothing left to revoke there.
                skip_guards.add(refused.label)
                continue
            except ChangeConflict:
                self._sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311 - jitter
                continue
            answer = reply(updated)
            self._push(caller, conversation, answer)
            return answer
        raise Conflict("the message is changing too often right now, retry")

    def _consent_checks(
        self, caller: Caller, conversation: Conversation
    ) -> dict[str, dict[str, Any]]:
        """As a send's (messaging.py): the other member's block list, in a 1:1 only."""
        other = next(iter(conversation.members - {caller.user_id}), None)
        if not conversation.direct or other is None:
            return {}
        return {"consent": self.blocks.not_blocked_check(other, caller.user_id)}

    def _read(
        self, caller: Caller, conversation_id: str, seq: int
    ) -> tuple[Conversation, StoredMessage]:
        found, messages = self.changes.read(conversation_id, [seq])
        conversation = member_of(caller, found)
        message = messages.get(seq)
        if message is None:
            raise NotFound("no message at this seq")
        if message.system:
            # The conversation's own record (a call recording started...): the user it
            # names is its senderId, yet nobody may rewrite, delete or react to it.
            raise Conflict("a system entry cannot be changed")
        return conversation, message

    def _push(self, caller: Caller, conversation: Conversation, data: PushData) -> None:
        self.delivery.to_users(
            conversation.members, push(data), exclude_connection=caller.connection_id
        )
        logger.debug("message changed", extra={"push": data.TYPE})

    # ------------------------------------------------------------------ the change stream
    def changes_after(self, caller: Caller, data: wire.MessageChanges) -> wire.ChangesPage:
        """What changed after the caller's change cursor: one read of the conversation,
        one Query of its change log, one BatchGetItem of the changed messages (and one of
        the messages they quote, if any): whatever the conversation's length."""
        conversation, _ = self._read_conversation(caller, data.conversationId)
        cid, after = conversation.conversation_id, min(data.afterChange, conversation.last_change)
        if after >= conversation.last_change:
            return wire.ChangesPage(
                conversationId=cid,
                messages=[],
                cursor=after,
                lastChange=conversation.last_change,
                hasMore=False,
                reset=False,
            )
        entries = self.changes.changes(cid, after, data.limit)
        if not entries or entries[0].change != after + 1:
            # The log is gapless: a missing first entry has expired (TTL).
            return wire.ChangesPage(
                conversationId=cid,
                messages=[],
                cursor=conversation.last_change,
                lastChange=conversation.last_change,
                hasMore=False,
                reset=True,
            )
        seqs = list(dict.fromkeys(e.seq for e in reversed(entries)))[::-1]  # by last change
        found = self.conversations.messages_at([(cid, s) for s in seqs])
        stored = [found[(cid, s)] for s in seqs if (cid, s) in found]
        cursor = entries[-1].change
        wired = wire_messages(self.conversations, stored)
        fit = fitting(wired)
        if fit < len(wired):
            # The rest next time: the cursor stops at the last change of the last message
            # sent (a later change of one left out is read again, with all of it).
            cursor = max(e.change for e in entries if e.seq == wired[fit - 1].seq)
            wired = wired[:fit]
        return wire.ChangesPage(
            conversationId=cid,
            messages=wired,
            cursor=cursor,
            lastChange=conversation.last_change,
            hasMore=cursor < conversation.last_change,
            reset=False,
        )

    # ------------------------------------------------------------------ threads
    def thread_history(self, caller: Caller, data: wire.ThreadHistory) -> wire.ThreadPage:
        conversation, messages = self._read_conversation(
            caller, data.conversationId, [data.parentSeq]
        )
        parent = messages.get(data.parentSeq)
        if parent is None or parent.parent_seq is not None:
            raise NotFound("no thread at this seq")
        replies = self.changes.thread(
            conversation.conversation_id, data.parentSeq, data.afterSeq, data.limit + 1
        )
        page = replies[: data.limit]
        wired = wire_messages(self.conversations, [parent, *page])
        # The parent and the replies that fit beside it in one reply, but always one reply
        # at least: a page without one has no seq to go on from (the client would ask the
        # same page forever). Two messages of the longest body, escaped, fit in 128 KB.
        rest = REPLY_BUDGET_BYTES - len(to_json(wired[0].wire()))
        fit = fitting(wired[1:], rest)
        return wire.ThreadPage(
            conversationId=conversation.conversation_id,
            parent=wired[0],
            messages=wired[1 : 1 + fit],
            hasMore=len(replies) > data.limit or fit < len(wired) - 1,
        )

    # ------------------------------------------------------------------ mute
    def mute(self, caller: Caller, data: wire.ConversationMute) -> wire.MuteState:
        """One conditional write of the caller's own member item (its existence is the
        membership check): a non-member's mute changes nothing and finds no conversation,
        a former member's too (the write cannot tell them from a stranger)."""
        until: int | None = None
        if data.muted:
            until = data.until if data.until is not None else wire.FOREVER
            if until <= self._now_ms():
                raise BadRequest("until is in the past")
        if not self.changes.set_mute(data.conversationId, caller.user_id, until):
            raise conversation_not_found()
        return wire.MuteState(conversationId=data.conversationId, mutedUntil=until)

    def _read_conversation(
        self, caller: Caller, conversation_id: str, seqs: Iterable[int] = ()
    ) -> tuple[Conversation, dict[int, StoredMessage]]:
        found, messages = self.changes.read(conversation_id, list(seqs))
        return member_of(caller, found), messages


# ---------------------------------------------------------------------- shared with messaging
def quote_of(message: StoredMessage | None, seq: int) -> Quote:
    """The preview of a quoted message as it is now: a deleted (or missing) one shows as
    deleted, with no text (a quote never resurrects what its sender deleted)."""
    if message is None or message.deleted_at:
        return Quote(
            seq=seq, senderId=message.sender_id if message else "", snippet="", deleted=True
        )
    return Quote(
        seq=seq,
        senderId=message.sender_id,
        snippet=message.body[:QUOTE_SNIPPET_CHARS],
        deleted=False,
    )


# A route's reply is one WebSocket message: API Gateway sends none over 128 KB.
REPLY_BUDGET_BYTES = 100_000  # (messaging.py's pages use it too)


def fitting(items: Sequence[WireData], budget: int = REPLY_BUDGET_BYTES) -> int:
    """How many of ``items``, from the first, fit in a reply of ``budget`` bytes (at least
    one: no single item comes near it). Measured as sent (escaped JSON: an emoji is 12
    bytes)."""
    for count, item in enumerate(items):
        budget -= len(to_json(item.wire()))
        if budget < 0:
            return max(count, 1)
    return len(items)


def as_left(message: StoredMessage, left_at: int) -> StoredMessage:
    """A message as a member who left at ``left_at`` (epoch ms) may see it: nothing that
    may have changed after they left. Reactions, thread counts and change counts carry no
    time of their own, so none is shown; an edit made after the leave is withheld with
    the text and attachments it replaced (the earlier text is not kept): ``body`` empty,
    ``editedAt`` set. A delete is shown (the sender took the text back from everyone)."""
    late_edit = message.edited_at is not None and message.edited_at > left_at
    return replace(
        message,
        body="" if late_edit else message.body,
        attachments=[] if late_edit else message.attachments,
        reactions={},
        reply_count=0,
        last_reply_at=None,
        version=0,
        change=0,
    )


def wire_messages(
    conversations: ConversationRepository,
    messages: list[StoredMessage],
    *,
    left_at: int | None = None,
) -> list[Message]:
    """``messages`` on the wire, each quote resolved to the quoted message as it is now
    (those not among ``messages``: one BatchGetItem). ``left_at``: for a former member,
    as they may see them (``as_left``)."""
    if left_at is not None:
        messages = [as_left(m, left_at) for m in messages]
    quotes = resolve_quotes(conversations, messages, left_at=left_at)
    return [m.wire(quotes.get(m.reply_to_seq) if m.reply_to_seq else None) for m in messages]


def resolve_quotes(
    conversations: ConversationRepository,
    messages: Iterable[StoredMessage],
    *,
    left_at: int | None = None,
) -> dict[int, Quote]:
    page = list(messages)
    quoted = {m.reply_to_seq for m in page if m.reply_to_seq}
    if not quoted:
        return {}
    cid = page[0].conversation_id
    assert all(m.conversation_id == cid for m in page)
    known: dict[int, StoredMessage | None] = {m.seq: m for m in page if m.seq in quoted}
    missing = sorted(quoted - set(known))
    if missing:
        found = conversations.messages_at([(cid, s) for s in missing])
        known |= {s: found.get((cid, s)) for s in missing}
    if left_at is not None:
        known = {s: as_left(m, left_at) if m else None for s, m in known.items()}
    return {s: quote_of(known.get(s), s) for s in quoted}


def current_previews(
    conversations: ConversationRepository, user_id: str, notifications: list[Notification]
) -> list[Notification]:
    """Message notifications with the preview of the message as it is now (edited: the
    new text; deleted: none, and ``deleted``): a stored notification never keeps text its
    sender took back. One BatchGetItem for the page; a second, of the user's member items,
    only when a message was edited after its notification: for a former member an edit
    made after they left is withheld (empty, as their history shows it: ``as_left``)."""
    keys: list[tuple[str, int]] = []
    for n in notifications:
        key = _message_key(n)
        if key is not None:
            keys.append(key)
    if not keys:
        return notifications
    found = conversations.messages_at(keys)
    late: set[str] = set()  # conversations of messages edited after their notification
    for n in notifications:
        key = _message_key(n)
        message = found.get(key) if key is not None else None
        if key is not None and message is not None and (message.edited_at or 0) > n.createdAt:
            late.add(key[0])
    left_at = _left_at(conversations, user_id, late) if late else {}
    shown: list[Notification] = []
    for n in notifications:
        key = _message_key(n)
        if key is None:
            shown.append(n)
            continue
        message = found.get(key)
        data = dict(n.data)
        if message is None or message.deleted_at:
            data["preview"], data["deleted"] = "", True
        else:
            if key[0] in left_at:
                message = as_left(message, left_at[key[0]])
            data["preview"] = message.body[:200]
        shown.append(n.model_copy(update={"data": data}))
    return shown


def _left_at(
    conversations: ConversationRepository, user_id: str, conversation_ids: set[str]
) -> dict[str, int]:
    """When the user left each of these conversations they are no longer in (epoch ms; 0
    if not recorded, or no member item at all: everything later is withheld)."""
    members = conversations.memberships(user_id, sorted(conversation_ids))
    left: dict[str, int] = {}
    for cid in conversation_ids:
        member = members.get(cid)
        if member is None or member.left_seq is not None:
            left[cid] = member.left_at or 0 if member is not None else 0
    return left


def _message_key(notification: Notification) -> tuple[str, int] | None:
    data = notification.data
    if notification.kind != "message":
        return None
    cid, seq = data.get("conversationId"), data.get("seq")
    if not isinstance(cid, str) or not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return (cid, seq)


def fresh_retry(conversations: ConversationRepository, job: RetryJob) -> RetryJob:
    """A push waiting in the delivery queue, as of now: a ``message:new`` is read again, so
    a message edited or deleted while its push waited arrives edited or as a tombstone
    (a retry never resurrects deleted text). Other pushes go as they are (clients order
    change pushes by ``version``). One BatchGetItem per retried message."""
    try:
        frame = json.loads(job.frame)
        data = frame["data"] if frame.get("type") == Message.TYPE else None
        key = (str(data["conversationId"]), int(data["seq"])) if data else None
    except (ValueError, TypeError, KeyError):
        return job
    if key is None:
        return job
    stored = conversations.messages_at([key]).get(key)
    if stored is None:
        return job
    (current,) = wire_messages(conversations, [stored])
    return RetryJob(job.connection_id, job.user_id, encode(push(current)).decode())
