"""Conversations and messages: the domain logic behind the messaging actions.

See dal/conversations.py for how seq stays gapless and sends idempotent, delivery.py for
how frames reach devices, notifier.py for offline recipients.
"""

from __future__ import annotations

import base64
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, StringConstraints

from switchboard.dal.conversations import (
    Conversation,
    ConversationRepository,
    DuplicateSend,
    GuardRefused,
    SeqConflict,
    StoredMessage,
    direct_id,
    inbox,
    send_digest,
)
from switchboard.dal.membership import BlockRepository
from switchboard.dal.message_changes import MessageChangeRepository
from switchboard.dal.notifications import NotificationRepository
from switchboard.dal.ratelimits import RateLimit, RateLimiter, WindowLimiter
from switchboard.dal.uploads import MAX_SHARES, UploadRepository
from switchboard.delivery import Delivery
from switchboard.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    PayloadTooLarge,
    RateLimited,
    SwitchboardError,
    conversation_not_found,
)
from switchboard.limits import MAX_BODY_CHARS
from switchboard.membership import REFUSED, Consent, member_of, request_limit
from switchboard.message_ops import (
    REPLY_BUDGET_BYTES,
    as_left,
    current_previews,
    fitting,
    quote_of,
    resolve_quotes,
    wire_messages,
)
from switchboard.observability import logger
from switchboard.protocol import push, to_json
from switchboard.queues import NotificationJob, NotificationQueue
from switchboard.router import Caller
from switchboard.wire import messaging as wire
from switchboard.wire.membership import ConversationAccepted, ConversationRequest

if TYPE_CHECKING:
    from pydantic import TypeAdapter

SEND_ATTEMPTS = 8
TYPING_WINDOW_MS = 2000
# message:sync reads at most this much per frame, however many cursors it names.
SYNC_MAX_QUERIES = 20
SYNC_MAX_ITEMS = 500
SYNC_MIN_MESSAGE_BYTES = 128


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_chars: int = MAX_BODY_CHARS  # the protocol's limit: clients know it too
    max_members: int = 50
    # Rate limits per window (shared by every Lambda instance through DynamoDB).
    window_seconds: int = 10
    sends_per_user: int = 100
    sends_per_connection: int = 50
    creates_per_user: int = 10
    requests_per_day: int = 100  # conversations started with strangers (membership.py)


class MessagingService:
    def __init__(
        self,
        conversations: ConversationRepository,
        delivery: Delivery,
        notification_queue: NotificationQueue,
        notifications: NotificationRepository,
        limiter: WindowLimiter,
        counters: RateLimiter,
        uploads: UploadRepository,
        *,
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conversations = conversations
        self.changes = MessageChangeRepository(conversations)  # threads and quotes
        self.delivery = delivery
        self.users = delivery.users
        self.notification_queue = notification_queue
        self.notifications = notifications
        self.limiter = limiter
        self.counters = counters
        self.uploads = uploads
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self.consent = Consent(conversations, delivery)
        self.blocks = BlockRepository(self.users.table)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _conversation_for(self, caller: Caller, conversation_id: str) -> Conversation:
        return member_of(caller, self.conversations.get(conversation_id))

    # ------------------------------------------------------------------ conversations
    def _send_limits(self, caller: Caller) -> list[RateLimit]:
        window = self.limits.window_seconds
        return [
            RateLimit(f"send#user#{caller.user_id}", self.limits.sends_per_user, window),
            RateLimit(
                f"send#conn#{caller.connection_id}", self.limits.sends_per_connection, window
            ),
        ]

    def create_conversation(
        self, caller: Caller, data: wire.ConversationCreate
    ) -> wire.ConversationCreated:
        members = frozenset(data.members) | {caller.user_id}
        if len(members) < 2:
            raise BadRequest("a conversation needs at least one other member")
        if len(members) > self.limits.max_members:
            raise BadRequest(f"at most {self.limits.max_members} members")
        # A block, or a stranger who refuses requests, refuses the whole create; for the
        # other strangers it is a message request (membership.py). A group is an
        # invitation for everyone in it but its creator, contacts too: accepting it makes
        # its members one's contacts, so nobody can make strangers one's contacts for them.
        requests = self.consent.open_to(caller.user_id, members)
        if len(members) > 2:
            requests = set(members - {caller.user_id})
        if len(members) == 2:
            # One 1:1 conversation per pair and listing: the id is derived from both.
            conversation_id = direct_id(members, data.listingId)
            roles: dict[str, str] = {}
        else:
            conversation_id = "cv_" + uuid.uuid4().hex
            roles = {caller.user_id: "owner"}
        conversation = Conversation(
            conversation_id=conversation_id,
            members=members,
            created_by=caller.user_id,
            created_at=self._now_ms(),
            title=data.title,
            listing_id=data.listingId,
            pending=frozenset(requests),
            roles=roles,
        )
        # Counted in the create's own transaction: a refused or repeated create (the same
        # 1:1 conversation again) is not counted.
        rules = {
            "limit": RateLimit(
                f"create#user#{caller.user_id}",
                self.limits.creates_per_user,
                self.limits.window_seconds,
            )
        }
        if requests:
            rules["requests"] = request_limit(caller.user_id, self.limits.requests_per_day)
        try:
            created = self.conversations.create(
                conversation,
                {
                    label: self.counters.update(rule, conversation.created_at)
                    for label, rule in rules.items()
                },
            )
        except GuardRefused as refused:
            raise _rate_limited(rules[refused.label], conversation.created_at) from None
        if not created and conversation.direct:
            # The same 1:1 again: if the other one declined it, this is refused exactly as
            # a block is (one read more, only on this repeat path).
            existing = self.conversations.get(conversation_id)
            if existing is not None and existing.declined_by not in (None, caller.user_id):
                raise Forbidden(REFUSED)
        if created and requests:
            self.delivery.to_users(
                sorted(requests),
                push(
                    ConversationRequest(
                        conversationId=conversation_id,
                        fromUserId=caller.user_id,
                        title=data.title,
                        listingId=data.listingId,
                        members=sorted(members),
                    )
                ),
            )
        return wire.ConversationCreated(conversationId=conversation_id, created=created)

    def list_conversations(
        self, caller: Caller, data: wire.ConversationList
    ) -> wire.ConversationPage:
        # One page of the activity index and one BatchGetItem, however many conversations
        # the caller is in (see dal/conversations.py).
        after = _decode_cursor(data.cursor) if data.cursor else None
        page = self.conversations.inbox(
            caller.user_id, data.limit, after, requests=data.folder == "requests"
        )
        found = self.conversations.get_many(m.conversation_id for m in page.members)
        now = self._now_ms()
        items: list[wire.ConversationSummary] = []
        # A reply is one WebSocket message (128 KB at most, or API Gateway sends nothing):
        # a page ends early, with a cursor, when the next summary would not fit (a group's
        # summary names up to 50 members, and its title and preview may be escaped).
        budget, shown = REPLY_BUDGET_BYTES, 0
        for member in page.members:
            c = found.get(member.conversation_id)
            if c is None:
                shown += 1
                continue
            # A declined 1:1 conversation lists as it did before (the decliner still a
            # member who has not accepted): the requester cannot tell it from a block.
            declined = {c.declined_by} if c.declined_by else set()
            items.append(
                wire.ConversationSummary(
                    conversationId=c.conversation_id,
                    title=c.title,
                    listingId=c.listing_id,
                    members=sorted(c.members | declined),
                    lastSeq=c.last_seq,
                    lastMessage=(
                        wire.LastMessage.model_validate(c.last_message) if c.last_message else None
                    ),
                    lastActivityAt=c.last_activity_at,
                    ackedSeq=member.acked_seq,
                    readSeq=member.read_seq,
                    unread=max(0, c.last_seq - member.read_seq),
                    lastChange=c.last_change,
                    mutedUntil=member.muted_until if member.muted_until > now else None,
                    request=caller.user_id in c.pending,
                    roles=dict(c.roles),
                    pending=sorted(c.pending | declined),
                )
            )
            budget -= len(to_json(items[-1].wire()))
            if budget < 0 and len(items) > 1:
                items.pop()
                break
            shown += 1
        next_cursor = None
        if page.more or shown < len(page.members):
            last = page.members[shown - 1]
            next_cursor = _encode_cursor((last.activity_at, last.conversation_id))
        return wire.ConversationPage(conversations=items, cursor=next_cursor)

    # ------------------------------------------------------------------ messages
    def send(self, caller: Caller, data: wire.MessageSend) -> wire.MessageSent:
        if len(data.body) > self.limits.max_body_chars:
            # The one body limit (MAX_BODY_CHARS); the frame itself is capped at 128 KB.
            raise PayloadTooLarge(
                f"body is longer than {self.limits.max_body_chars} characters",
                details=[{"field": "data.body", "message": "too long"}],
            )
        if not data.body.strip() and not data.attachments:
            raise BadRequest("a message needs a body or an attachment")
        if len({a.uploadId for a in data.attachments}) < len(data.attachments):
            raise BadRequest("an upload can be attached once per message")
        rules = self._send_limits(caller)
        quote: wire.Quote | None = None
        for attempt in range(SEND_ATTEMPTS):
            conversation, quote = self._conversation_for_send(caller, data)
            message = StoredMessage(
                conversation_id=conversation.conversation_id,
                seq=conversation.last_seq + 1,
                message_id=uuid.uuid4().hex,
                sender_id=caller.user_id,
                body=data.body,
                created_at=self._now_ms(),
                client_message_id=data.clientMessageId,
                attachments=[a.model_dump(exclude_none=True) for a in data.attachments],
                sender_connection_id=caller.connection_id,
                parent_seq=data.parentSeq,
                reply_to_seq=data.replyToSeq,
            )
            # The rate limits count in the send's own transaction: no extra call, and a send
            # that is refused, retried or repeated (same clientMessageId) is not counted.
            # Both in one item (the user's window): one transactional write, not two.
            guards = {"limit": self.counters.update_together(rules, message.created_at)}
            for position, a in enumerate(data.attachments):
                guards[f"attachment:{position}"] = self.uploads.share_update(
                    a.uploadId,
                    caller.user_id,
                    conversation.conversation_id,
                    message.seq,
                    file_name=a.fileName,
                    content_type=a.contentType,
                    size=a.size,
                    kind=a.kind,
                    duration_ms=a.durationMs,
                )
            change = self._thread_guards(conversation, message, guards)
            # A 1:1 recipient's block list, checked in the same transaction (no extra
            # call); groups are not refused (the blocker's clients hide the messages).
            checks = self._consent_checks(caller, conversation)
            try:
                self.conversations.append(conversation, message, guards, checks, change=change)
                break
            except DuplicateSend as duplicate:
                return self._repeat_send(caller, conversation, data, duplicate.refused)
            except GuardRefused as refused:
                error = _send_refusal(refused.label, rules, message.created_at)
                if error is not None:
                    raise error from None
                # another change took the change number: read again and retry
                self._sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311 - jitter
            except SeqConflict:
                if conversation.declined_by:
                    raise Forbidden(REFUSED) from None
                # Another member sent at the same moment: read the new lastSeq and retry.
                self._sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311 - jitter
        else:
            raise Conflict("the conversation is too busy right now, retry the send")
        self._deliver(caller, conversation, message, quote)
        if caller.user_id in conversation.pending:  # the reply accepted the request
            self.membership_accepted(caller, conversation, message.seq)
        return wire.MessageSent(
            seq=message.seq, messageId=message.message_id, createdAt=message.created_at
        )

    def _thread_guards(
        self, conversation: Conversation, message: StoredMessage, guards: dict[str, Any]
    ) -> int | None:
        """A thread reply counts itself on its parent, as the conversation's next change
        (dal/message_changes.py), in the send's own transaction: adds those guards and
        returns the change number (None: not a thread reply)."""
        if message.parent_seq is None:
            return None
        change = conversation.last_change + 1
        cid, now = conversation.conversation_id, message.created_at
        guards["parent"] = self.changes.parent_update(cid, message.parent_seq, now, change)
        guards["change"] = self.changes.change_entry(cid, change, message.parent_seq, now)
        return change

    def _conversation_for_send(
        self, caller: Caller, data: wire.MessageSend
    ) -> tuple[Conversation, wire.Quote | None]:
        """The conversation and, for a quote-reply, the quoted message's preview: in the one
        read a send makes (a BatchGetItem over both tables instead of a GetItem)."""
        linked = [s for s in (data.parentSeq, data.replyToSeq) if s is not None]
        if not linked:
            return self._conversation_for(caller, data.conversationId), None
        found, messages = self.changes.read(data.conversationId, linked)
        conversation = member_of(caller, found)
        parent = messages.get(data.parentSeq) if data.parentSeq is not None else None
        if data.parentSeq is not None and (
            parent is None or parent.parent_seq is not None or parent.system or parent.deleted_at
        ):
            raise BadRequest(
                "parentSeq is not a message of this conversation, is deleted, or is a reply itself",
                details=[{"field": "data.parentSeq", "message": "no such thread"}],
            )
        if data.replyToSeq is None:
            return conversation, None
        quoted = messages.get(data.replyToSeq)
        if quoted is None:
            raise BadRequest(
                "replyToSeq is not a message of this conversation",
                details=[{"field": "data.replyToSeq", "message": "no such message"}],
            )
        return conversation, quote_of(quoted, data.replyToSeq)

    def _consent_checks(
        self, caller: Caller, conversation: Conversation
    ) -> dict[str, dict[str, Any]]:
        """A 1:1 recipient's block list, checked in the send's own transaction (no extra
        call). Groups are not refused: the blocker's clients hide the messages."""
        other = next(iter(conversation.members - {caller.user_id}), None)
        if not conversation.direct or other is None:
            return {}
        return {"consent": self.blocks.not_blocked_check(other, caller.user_id)}

    def _repeat_send(
        self,
        caller: Caller,
        conversation: Conversation,
        data: wire.MessageSend,
        refused: frozenset[str],
    ) -> wire.MessageSent:
        previous = self.conversations.previous_send(
            conversation.conversation_id, caller.user_id, data.clientMessageId
        )
        if previous is None:  # the record expired (24 h): the id may be reused
            raise Conflict("clientMessageId was used for another message")
        attachments = [a.model_dump(exclude_none=True) for a in data.attachments]
        if previous.digest not in (None, send_digest(data.body, attachments)):
            # Same id, other content: not a retry. Answering with the first reply would
            # tell the client its second message was stored when it was not.
            raise Conflict("clientMessageId was already used for a different message")
        reply = previous.reply
        # The first attempt may have died between storing and pushing; push again (clients
        # drop duplicates by seq), so an acknowledged message always reaches online members.
        # Not where a new send would be refused (a block: the transaction's check; a
        # declined 1:1: the read, as for a new send's SeqConflict - the "meta" condition
        # also fails when another member's send moved lastSeq, and an honest retry racing
        # one must still be pushed), and no more repeats pushed than sends: a window of
        # their own (a repeat never takes a new send's room), answered in any case, so
        # repeats cannot push (and queue notifications) more than sends could.
        repeats = RateLimit(
            f"repeat#user#{caller.user_id}", self.limits.sends_per_user, self.limits.window_seconds
        )
        refused_here = "consent" in refused or conversation.declined_by is not None
        if not refused_here and self.counters.consume(repeats, self._now_ms()):
            stored = self.conversations.messages_after(
                conversation.conversation_id, int(reply["seq"]) - 1, 1
            )
            if stored:
                self._deliver(caller, conversation, stored[0])
        return wire.MessageSent.model_validate(reply)

    def _deliver(
        self,
        caller: Caller,
        conversation: Conversation,
        message: StoredMessage,
        quote: wire.Quote | None = None,
    ) -> None:
        report = self.delivery.to_users(
            conversation.members,
            push(message.wire(quote)),
            exclude_connection=caller.connection_id,
        )
        offline = [u for u in report.offline_users if u != caller.user_id]
        if offline:
            self.notification_queue.enqueue(
                NotificationJob(
                    kind="message",
                    user_id=user_id,
                    created_at=message.created_at,
                    source=f"msg#{message.conversation_id}#{message.seq}",
                    conversation_id=message.conversation_id,
                    data={
                        "conversationId": message.conversation_id,
                        "seq": message.seq,
                        "senderId": message.sender_id,
                        "preview": message.body[:200],
                        "title": conversation.title,
                    },
                )
                for user_id in offline
            )
        logger.debug(
            "message delivered",
            extra={
                "conversationId": message.conversation_id,
                "seq": message.seq,
                "delivered": len(report.delivered),
                "retrying": len(report.queued_for_retry),
                "offline": len(offline),
            },
        )

    def membership_accepted(self, caller: Caller, conversation: Conversation, seq: int) -> None:
        """A reply accepted the request: the others are told (membership.py), with the
        replier's cursors (sending is reading: both are at the reply's seq)."""
        others = conversation.accepted() - {caller.user_id}
        if others:
            self.delivery.to_users(
                others,
                push(
                    ConversationAccepted(
                        conversationId=conversation.conversation_id,
                        userId=caller.user_id,
                        ackedSeq=seq,
                        readSeq=seq,
                    )
                ),
                private_to=caller.user_id,
            )

    def advance(self, caller: Caller, data: wire.Cursor, cursor: str) -> wire.CursorMoved:
        """message:ack (cursor ackedSeq) and message:read (readSeq)."""
        conversation = self.conversations.get(data.conversationId)
        if conversation is None:
            raise self.consent.unknown(caller, data.conversationId)
        # A former member acks and reads up to their leave entry (their devices ack the
        # entry itself), telling nobody; for anyone else it does not exist.
        bound = self.consent.history_bound(caller, conversation)
        seq = min(data.seq, bound)
        moved = (
            self.conversations.advance_cursor(
                conversation.conversation_id, caller.user_id, cursor, seq, self._now_ms()
            )
            if seq > 0
            else None
        )
        # Receipts are for contacts: none while the conversation is a request for the
        # caller, none to members who have not accepted it, none across a block.
        others = conversation.accepted() - {caller.user_id}
        if caller.user_id not in conversation.members:
            others = frozenset()
        # "Accepted and still a member" is read off the item this write moved (its folder:
        # the inbox), not the conversation read above: an accept landing between the two
        # read the cursor before it moved (its conversation:accepted carried the old one),
        # so this receipt must go; a decline or removal landing there took the item out of
        # every folder (a declined requester is never told anything), so it must not.
        if moved is not None and moved.folder == inbox(caller.user_id) and others:
            receipt = wire.MessageDelivered if cursor == "ackedSeq" else wire.MessageRead
            self.delivery.to_users(
                others,
                push(
                    receipt(
                        conversationId=conversation.conversation_id,
                        seq=seq,
                        userId=caller.user_id,
                    )
                ),
                private_to=caller.user_id,
            )
        return wire.CursorMoved(
            conversationId=conversation.conversation_id, seq=seq, moved=moved is not None
        )

    def sync(self, caller: Caller, data: wire.MessageSync) -> wire.SyncResult:
        found = self.conversations.get_many(data.cursors)
        left_at: dict[str, int] = {}  # former members' conversations: when they left
        outside = [
            c for c in data.cursors if c not in found or caller.user_id not in found[c].members
        ]
        # A former member reads up to the seq they left at: the caller's member items where
        # they are not a member, in one BatchGetItem however many (a stranger's and an
        # unknown id's absent item are read alike: Consent.unknown).
        former = self.conversations.memberships(caller.user_id, outside, consistent=True)
        for conversation_id in outside:
            conversation, member = found.get(conversation_id), former.get(conversation_id)
            if conversation is None or member is None or member.left_seq is None:
                raise conversation_not_found()
            found[conversation_id] = replace(conversation, last_seq=member.left_seq)
            left_at[conversation_id] = member.left_at or 0
        # What one frame may cost is bounded whatever the number of cursors: at most
        # SYNC_MAX_QUERIES queries reading SYNC_MAX_ITEMS messages in all, and none once
        # the reply is full. A conversation left out says hasMore; the client syncs again.
        budget = REPLY_BUDGET_BYTES
        queries, items_left = SYNC_MAX_QUERIES, SYNC_MAX_ITEMS
        result: dict[str, wire.SyncedConversation] = {}
        for conversation_id, after in data.cursors.items():
            conversation = found[conversation_id]
            shown: list[wire.Message] = []
            if conversation.last_seq > after and budget > 0 and queries > 0 and items_left > 0:
                queries -= 1
                # No more messages than could still fit (each is at least ~150 bytes wired).
                fits = budget // SYNC_MIN_MESSAGE_BYTES + 1
                messages = self.conversations.messages_after(
                    conversation_id, after, min(data.limit, items_left, fits)
                )
                messages = [m for m in messages if m.seq <= conversation.last_seq]
                items_left -= len(messages)
                left = left_at.get(conversation_id)
                for wired in wire_messages(self.conversations, messages, left_at=left):
                    size = len(json.dumps(wired.wire()))
                    if size > budget:
                        budget = 0  # full: no later conversation is queried
                        break
                    budget -= size
                    shown.append(wired)
            last_shown = shown[-1].seq if shown else after
            result[conversation_id] = wire.SyncedConversation(
                lastSeq=conversation.last_seq,
                messages=shown,
                hasMore=last_shown < conversation.last_seq,
                # a former member has no change stream (message:changes is for members)
                lastChange=0 if conversation_id in left_at else conversation.last_change,
            )
        return wire.SyncResult(conversations=result)

    def history(self, caller: Caller, data: wire.MessageHistory) -> wire.HistoryPage:
        conversation = self.conversations.get(data.conversationId)
        if conversation is None:
            raise self.consent.unknown(caller, data.conversationId)
        # A former member keeps the history up to the seq they left at (anyone else: not
        # found, as for a conversation that does not exist).
        bound, left_at = self.consent.reader(caller, conversation)
        conversation = replace(conversation, last_seq=bound)
        cid, around = conversation.conversation_id, data.aroundSeq
        if around is not None and around > bound:
            around = bound
        if around is None:
            before = bound + 1 if data.beforeSeq is None else min(data.beforeSeq, bound + 1)
            messages = self.conversations.messages_before(cid, before, data.limit)
        else:  # a page around a search hit: half older, the rest from it on
            older = data.limit // 2
            messages = self.conversations.messages_before(cid, around, older) if older else []
            newer = data.limit - len(messages)
            messages += self.conversations.messages_after(cid, around - 1, newer)
            messages = [m for m in messages if m.seq <= bound]
        wired: list[wire.Message] = []
        budget = REPLY_BUDGET_BYTES
        if left_at is not None:  # as a former member may see them (message_ops.as_left)
            messages = [as_left(m, left_at) for m in messages]
        quotes = resolve_quotes(self.conversations, messages, left_at=left_at)
        for message in reversed(messages):  # keep the newest when the budget runs out
            item = message.wire(quotes.get(message.reply_to_seq) if message.reply_to_seq else None)
            budget -= len(json.dumps(item.wire()))
            if budget < 0:
                break
            wired.append(item)
        wired.reverse()
        first = wired[0].seq if wired else (data.beforeSeq or conversation.last_seq + 1)
        return wire.HistoryPage(
            conversationId=conversation.conversation_id,
            messages=wired,
            hasMore=first > 1,
            lastSeq=conversation.last_seq,
            lastChange=conversation.last_change if left_at is None else 0,
        )

    # ------------------------------------------------------------------ typing, presence
    def typing(
        self, caller: Caller, data: wire.Typing, state: Literal["start", "stop"]
    ) -> wire.TypingSent:
        conversation = self._conversation_for(caller, data.conversationId)
        # Typing is for contacts: none while this is a request for the caller, none to
        # members who have not accepted it, none across a block (nothing counted either).
        others = conversation.accepted() - {caller.user_id}
        if caller.user_id in conversation.pending or not others:
            return wire.TypingSent(sent=False)
        # Each push costs a presence read and a post per device of every member: both
        # states are limited, each on its own window (a stop right after a start is normal).
        key = "typing" if state == "start" else "typing-stop"
        if not self.limiter.acquire(
            f"{key}#{caller.user_id}#{conversation.conversation_id}",
            self._now_ms(),
            TYPING_WINDOW_MS,
            # analytics counts typing per session (the window's stream record carries it)
            connection_id=caller.connection_id,
        ):
            raise RateLimited(f"typing:{state} at most once every 2 seconds per conversation")
        self.delivery.to_users(
            others,
            push(
                wire.TypingPush(
                    conversationId=conversation.conversation_id,
                    userId=caller.user_id,
                    state=state,
                )
            ),
            private_to=caller.user_id,
        )
        return wire.TypingSent(sent=True)

    def presence(self, caller: Caller, data: wire.PresenceQuery) -> wire.PresenceList:
        # Contacts (membership.Consent): an accepted 1:1 conversation, read by key, or the
        # recent page of accepted conversations (requests live in another folder, so no
        # number of conversations strangers start can hide a contact). Bounded, whatever
        # others did to the caller. Block lists come with the presence read itself.
        wanted = set(data.userIds) - {caller.user_id}
        refused = Forbidden(
            "presence is visible only for people you share an accepted conversation with"
        )
        if wanted - self.consent.contacts(caller.user_id, wanted):
            raise refused
        found = self.users.presence([*data.userIds, caller.user_id], consent=True)
        me = found[caller.user_id]
        # Across a block (either way) a contact shows as offline with no lastSeen, as
        # someone who never connected: refusing would tell the blocked one of the block.
        return wire.PresenceList(
            presence=[
                wire.Presence(userId=u, online=False, lastSeen=None)
                if caller.user_id in p.blocked or u in me.blocked
                else wire.Presence(userId=u, online=p.online, lastSeen=p.last_seen or None)
                for u, p in found.items()
                if u in data.userIds
            ]
        )

    # ------------------------------------------------------------------ notifications
    def list_notifications(
        self, caller: Caller, data: wire.NotificationList
    ) -> wire.NotificationPage:
        page, cursor = self.notifications.page(
            caller.user_id, data.limit, data.before, data.unreadOnly
        )
        shown = current_previews(self.conversations, caller.user_id, [n.wire() for n in page])
        fit = fitting(shown)  # one reply (a preview and a title may be escaped emoji)
        if fit < len(shown):
            shown, cursor = shown[:fit], shown[fit - 1].notificationId
        return wire.NotificationPage(notifications=shown, cursor=cursor)

    def read_notifications(
        self, caller: Caller, data: wire.NotificationRead
    ) -> wire.NotificationsMarked:
        return wire.NotificationsMarked(
            marked=self.notifications.mark_read(caller.user_id, list(data.notificationIds))
        )


def _encode_cursor(position: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()


# A cursor is ours (base64 of [lastActivityAt, conversationId]) but comes back from the
# client: validated as strictly as any other input. Built on the first paged
# conversation:list, off the cold start.
@cache
def _cursor() -> TypeAdapter[tuple[int, str]]:
    from pydantic import TypeAdapter

    return TypeAdapter(
        tuple[
            Annotated[int, Field(ge=0, le=2**53)],
            Annotated[str, StringConstraints(min_length=1, max_length=64)],
        ]
    )


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        return _cursor().validate_json(base64.urlsafe_b64decode(cursor.encode()), strict=True)
    except (ValueError, TypeError):  # binascii.Error and ValidationError are ValueErrors
        raise BadRequest("invalid cursor") from None


def _send_refusal(label: str, rules: list[RateLimit], now_ms: int) -> SwitchboardError | None:
    """The error for a guard of a send's transaction that refused (nothing was stored);
    None: a race on the change number (a thread reply's), read again and retry."""
    if label == "consent":
        return Forbidden(REFUSED)
    if label == "limit":
        return _rate_limited(rules, now_ms)
    if label == "parent":
        return BadRequest(
            "parentSeq is not a message of this conversation, is deleted, or is a reply itself",
            details=[{"field": "data.parentSeq", "message": "no such thread"}],
        )
    if label == "change":
        return None
    position = int(label.removeprefix("attachment:"))
    return BadRequest(
        f"attachments[{position}] is not a completed upload of yours, or its "
        "fileName/contentType/size differ from the upload's, or it is shared in "
        f"{MAX_SHARES} conversations already (upload the file again)",
        details=[{"field": f"data.attachments.{position}", "message": "not usable"}],
    )


def _rate_limited(rules: RateLimit | list[RateLimit], now_ms: int) -> RateLimited:
    """``rules`` counted together share a window: one of them refused, all say when."""
    rules = rules if isinstance(rules, list) else [rules]
    per = {"conn": "connection"}  # the keys' second part: send#user#..., send#conn#...
    limits = " and ".join(
        f"{rule.limit} per {per.get(kind, kind)}"
        for rule in rules
        for kind in [rule.key.split("#")[1] if "#" in rule.key else "window"]
    )
    return RateLimited(
        f"rate limit reached: at most {limits} per {rules[0].window_seconds} s",
        details={"retryAfterMs": rules[0].retry_after_ms(now_ms)},
    )
