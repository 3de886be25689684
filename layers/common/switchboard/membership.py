"""Consent and membership: message requests, contacts, blocks, leaving and group roles.

- **Contacts** are users who share a conversation both accepted. Only contacts see each
  other's presence, typing and receipts (``Consent.contacts``: the 1:1 conversation read
  by key, then the most recent page of accepted conversations; both bounded).
- **Requests.** A conversation started with someone who is not a contact is a request
  for them (``pending`` in its meta, its member item in their ``requests#`` folder) until
  they accept it or reply. Starting one is refused when they blocked the starter or
  refuse requests altogether, with one error (REFUSED) from one read, so a block cannot
  be told from a refused request. Requests per user and day are capped (spam).
- **Blocks** (dal/membership.py): a 1:1 send's own transaction checks the recipient's
  block list; pushes that reveal activity skip blocked pairs (Delivery's ``private_to``).
- **Membership changes** are system entries in the seq stream (dal/membership.py), so
  history tells the story and a racing send is ordered before or after the change.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from switchboard.dal.conversations import (
    Conversation,
    ConversationRepository,
    GuardRefused,
    SeqConflict,
    StoredMessage,
)
from switchboard.dal.membership import BlockListFull, BlockRepository, MembershipRepository
from switchboard.dal.ratelimits import RateLimit, RateLimiter
from switchboard.delivery import Delivery
from switchboard.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    conversation_not_found,
)
from switchboard.observability import logger
from switchboard.protocol import push
from switchboard.router import Caller
from switchboard.wire import membership as wire
from switchboard.wire.system import SystemEvent

# One refusal for "blocked you", "refuses requests" and "declined": the same code, the
# same words, decided on the same read, so none can be told from the others.
REFUSED = "they do not accept messages from you"
CHANGE_ATTEMPTS = 8
DAY_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class ConsentLimits:
    max_members: int = 50
    window_seconds: int = 10
    creates_per_user: int = 10  # also counts add-members
    requests_per_day: int = 100  # requests and group invitations started, per user
    # Title, role and remove changes per user and minute: each is a transaction over
    # every member's item and a push to each member, so a storm of them is capped.
    manages_per_minute: int = 10
    # Blocks and unblocks per user and minute: a block list lives on its owner's Users
    # item, so each change rewrites the whole item (~130 write units for a full list).
    block_changes_per_minute: int = 30


class Consent:
    """The checks conversation:create, add-members and call:initiate share."""

    def __init__(self, conversations: ConversationRepository, delivery: Delivery) -> None:
        self.conversations = conversations
        self.users = delivery.users

    def contacts(self, user_id: str, others: Collection[str]) -> set[str]:
        """Those of ``others`` who share an accepted conversation with the user: an
        accepted 1:1 conversation (by key), else the recent page of accepted
        conversations. Bounded: at most 2 BatchGetItems and a Query, whatever the user's
        number of conversations. Older group-only contacts count as strangers (a request,
        the safe side)."""
        wanted = set(others) - {user_id}
        if not wanted:
            return set()
        found = self.conversations.direct_contacts(user_id, wanted)
        rest = wanted - found
        if rest:
            found |= rest & set(self.conversations.recent_contacts(user_id))
        return found

    def open_to(self, caller: str, others: Collection[str]) -> set[str]:
        """Checks that ``caller`` may start a conversation with ``others``; returns those
        for whom it is a request. Forbidden(REFUSED) if one blocked the caller, or is a
        stranger who refuses requests: decided on one read either way."""
        wanted = set(others) - {caller}
        if not wanted:
            return set()
        states = self.users.presence(sorted(wanted), consent=True)
        strangers = wanted - self.contacts(caller, wanted)
        refused = [
            u
            for u in sorted(wanted)
            if caller in states[u].blocked or (u in strangers and states[u].refuses_requests)
        ]
        if refused:
            raise Forbidden(REFUSED)
        return strangers

    def history_bound(self, caller: Caller, conversation: Conversation) -> int:
        """The last seq the caller may read: lastSeq for a member, the seq they left at
        for a former member (one GetItem, only then); for anyone else the conversation
        does not exist (``conversation_not_found``: it tells a stranger nothing)."""
        return self.reader(caller, conversation)[0]

    def reader(self, caller: Caller, conversation: Conversation) -> tuple[int, int | None]:
        """``history_bound`` and, for a former member, when they left (epoch ms; 0 if
        they left before that was recorded): None for a member."""
        if caller.user_id in conversation.members:
            return conversation.last_seq, None
        member = self.conversations.member(conversation.conversation_id, caller.user_id)
        if member is None or member.left_seq is None:
            raise conversation_not_found()
        return member.left_seq, member.left_at or 0

    def unknown(self, caller: Caller, conversation_id: str) -> NotFound:
        """The error for a conversation that does not exist, after the read ``reader``
        makes to refuse a stranger (their member item), so both take the same DynamoDB
        calls: not even the reply's timing tells a conversation of others from none."""
        self.conversations.member(conversation_id, caller.user_id)
        return conversation_not_found()


def member_of(caller: Caller, conversation: Conversation | None) -> Conversation:
    """The conversation, if the caller is a member of it; else not found, whether it
    does not exist or the caller is not in it (a former member too: telling them from a
    stranger would take a read of their member item, and they know it is gone for them)."""
    if conversation is None or caller.user_id not in conversation.members:
        raise conversation_not_found()
    return conversation


def role_of(conversation: Conversation, user_id: str) -> str:
    role = conversation.roles.get(user_id)
    if role:
        return role
    if not conversation.roles and user_id == conversation.created_by:
        return "owner"  # a group created before roles were stored
    return "member"


class MembershipService:
    def __init__(
        self,
        conversations: ConversationRepository,
        membership: MembershipRepository,
        blocks: BlockRepository,
        delivery: Delivery,
        counters: RateLimiter,
        *,
        limits: ConsentLimits = ConsentLimits(),
        clock: Callable[[], float] = time.time,
        on_block: Callable[[str, str, int], object] | None = None,
    ) -> None:
        self.conversations = conversations
        self.membership = membership
        self.blocks = blocks
        # (blocker, blocked, now ms) after a block is written: a call both are in stops
        # relaying between them (calls/blocks.py)
        self.on_block = on_block
        self.delivery = delivery
        self.counters = counters
        self.consent = Consent(conversations, delivery)
        self.limits = limits
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _conversation_for(self, caller: Caller, conversation_id: str) -> Conversation:
        return member_of(caller, self.conversations.get(conversation_id))

    # ------------------------------------------------------------------ requests
    def accept(self, caller: Caller, data: wire.ConversationRef) -> wire.ConsentChanged:
        conversation = self._conversation_for(caller, data.conversationId)
        changed = caller.user_id in conversation.pending and self.membership.accept(
            conversation.conversation_id, caller.user_id
        )
        if changed:
            self.announce_accepted(caller, conversation)
        return wire.ConsentChanged(conversationId=conversation.conversation_id, changed=changed)

    def announce_accepted(self, caller: Caller, conversation: Conversation) -> None:
        """Tells the members who accepted that the caller did too (they may now see the
        caller's presence and receipts; the push is private to the caller: blocks apply)."""
        others = conversation.accepted() - {caller.user_id}
        if not others:
            return
        # With the receipts that were held back while it was a request (one GetItem).
        member = self.conversations.member(conversation.conversation_id, caller.user_id)
        self.delivery.to_users(
            others,
            push(
                wire.ConversationAccepted(
                    conversationId=conversation.conversation_id,
                    userId=caller.user_id,
                    ackedSeq=member.acked_seq if member else 0,
                    readSeq=member.read_seq if member else 0,
                )
            ),
            private_to=caller.user_id,
        )

    def decline(self, caller: Caller, data: wire.ConversationRef) -> wire.ConsentChanged:
        for _ in range(CHANGE_ATTEMPTS):
            conversation = self.conversations.get(data.conversationId)
            if conversation is None:
                raise self.consent.unknown(caller, data.conversationId)
            if caller.user_id not in conversation.members:
                # Declined (or left) already: a retry changes nothing; for anyone else
                # the conversation does not exist (history_bound raises).
                self.consent.history_bound(caller, conversation)
                return wire.ConsentChanged(
                    conversationId=conversation.conversation_id, changed=False
                )
            if caller.user_id not in conversation.pending:
                return wire.ConsentChanged(
                    conversationId=conversation.conversation_id, changed=False
                )
            if self.membership.decline(conversation, caller.user_id, self._now_ms()):
                logger.info("request declined", extra={"conversationId": data.conversationId})
                return wire.ConsentChanged(
                    conversationId=conversation.conversation_id, changed=True
                )
        raise Conflict("the conversation is too busy right now, retry")

    # ------------------------------------------------------------------ membership
    def leave(self, caller: Caller, data: wire.ConversationRef) -> wire.MembershipChanged:
        conversation = self._conversation_for(caller, data.conversationId)
        if caller.user_id in conversation.pending and not conversation.direct:
            # A request's recipient leaving it declines it: silently, no system entry
            # (the requester learns nothing they would not from a decline).
            self.decline(caller, data)
            return wire.MembershipChanged(
                conversationId=conversation.conversation_id,
                seq=conversation.last_seq,
                members=sorted(conversation.members - {caller.user_id}),
            )

        def change(conversation: Conversation) -> _Change:
            if conversation.direct:
                raise BadRequest("a 1:1 conversation cannot be left: decline or block instead")
            roles = dict(conversation.roles) or {conversation.created_by: "owner"}
            event = SystemEvent(kind="left", by=caller.user_id, userIds=[caller.user_id])
            if roles.pop(caller.user_id, None) == "owner":
                heir = _heir(conversation, roles, caller.user_id)
                if heir is not None:
                    roles[heir] = "owner"
                    event = SystemEvent(
                        kind="left", by=caller.user_id, userIds=[caller.user_id], owner=heir
                    )
            return _Change(event, remove={caller.user_id}, roles=roles)

        return self._apply(caller, data.conversationId, change)

    def add_members(self, caller: Caller, data: wire.MembersAdd) -> wire.MembershipChanged:
        def change(conversation: Conversation) -> _Change:
            self._require_admin(conversation, caller, "add members")
            new = sorted(set(data.members) - conversation.members)
            if not new:
                raise BadRequest("everyone named is a member already")
            if len(conversation.members) + len(new) > self.limits.max_members:
                raise BadRequest(f"at most {self.limits.max_members} members")
            # Refused as a create is (a block, a stranger who refuses requests); for
            # everyone added, contacts too, it is an invitation to accept: joining a group
            # makes its members one's contacts, and someone who left is not pulled back.
            self.consent.open_to(caller.user_id, new)
            event = SystemEvent(kind="added", by=caller.user_id, userIds=new)
            return _Change(event, add=dict.fromkeys(new, True))

        return self._apply(caller, data.conversationId, change)

    def remove_member(self, caller: Caller, data: wire.MemberRemove) -> wire.MembershipChanged:
        def change(conversation: Conversation) -> _Change:
            if data.userId == caller.user_id:
                raise BadRequest("to leave, send conversation:leave")
            self._require_admin(conversation, caller, "remove members")
            if data.userId not in conversation.members:
                raise NotFound("no such member")
            target = role_of(conversation, data.userId)
            if target == "owner" or (
                target == "admin" and role_of(conversation, caller.user_id) != "owner"
            ):
                raise Forbidden("only the owner may remove an admin; nobody the owner")
            roles = {u: r for u, r in _roles(conversation).items() if u != data.userId}
            event = SystemEvent(kind="removed", by=caller.user_id, userIds=[data.userId])
            return _Change(event, remove={data.userId}, roles=roles)

        return self._apply(caller, data.conversationId, change)

    def set_role(self, caller: Caller, data: wire.RoleSet) -> wire.MembershipChanged:
        def change(conversation: Conversation) -> _Change:
            if conversation.direct or role_of(conversation, caller.user_id) != "owner":
                raise Forbidden("only the group's owner may change roles")
            if data.userId == caller.user_id or data.userId not in conversation.members:
                raise BadRequest("userId must be another member")
            if data.userId in conversation.pending:
                raise BadRequest("the member has not accepted the conversation yet")
            roles = _roles(conversation)
            if data.role == "admin":
                roles[data.userId] = "admin"
            else:
                roles.pop(data.userId, None)
            event = SystemEvent(
                kind="role", by=caller.user_id, userIds=[data.userId], role=data.role
            )
            return _Change(event, roles=roles)

        return self._apply(caller, data.conversationId, change)

    def set_title(self, caller: Caller, data: wire.TitleSet) -> wire.MembershipChanged:
        def change(conversation: Conversation) -> _Change:
            self._require_admin(conversation, caller, "change the title")
            event = SystemEvent(kind="title", by=caller.user_id, title=data.title)
            return _Change(event, title=data.title)

        return self._apply(caller, data.conversationId, change)

    def _require_admin(self, conversation: Conversation, caller: Caller, what: str) -> None:
        if conversation.direct:
            raise BadRequest(f"a 1:1 conversation has no admins: cannot {what}")
        if role_of(conversation, caller.user_id) not in ("owner", "admin"):
            raise Forbidden(f"only the group's owner or an admin may {what}")

    def _apply(
        self,
        caller: Caller,
        conversation_id: str,
        plan: Callable[[Conversation], _Change],
    ) -> wire.MembershipChanged:
        for _ in range(CHANGE_ATTEMPTS):
            conversation = self._conversation_for(caller, conversation_id)
            change = plan(conversation)
            now = self._now_ms()
            entry = StoredMessage(
                conversation_id=conversation.conversation_id,
                seq=conversation.last_seq + 1,
                message_id=uuid.uuid4().hex,
                sender_id=caller.user_id,
                body="",
                created_at=now,
                client_message_id=f"system-{uuid.uuid4().hex}",
                system=change.event.wire(),
            )
            rules = self._rules(caller, change)
            guards = {f"limit:{rule.key}": self.counters.update(rule, now) for rule in rules}
            try:
                self.membership.change(
                    conversation,
                    entry,
                    add=change.add,
                    remove=change.remove,
                    roles=change.roles,
                    title=change.title,
                    guards=guards,
                )
            except GuardRefused as refused:
                rule = next(r for r in rules if f"limit:{r.key}" == refused.label)
                raise RateLimited(
                    f"rate limit reached: at most {rule.limit} per {rule.window_seconds} s",
                    details={"retryAfterMs": rule.retry_after_ms(now)},
                ) from None
            except SeqConflict:
                continue
            members = (conversation.members | set(change.add)) - change.remove
            self._announce(caller, conversation, entry, change)
            return wire.MembershipChanged(
                conversationId=conversation.conversation_id,
                seq=entry.seq,
                members=sorted(members),
            )
        raise Conflict("the conversation is too busy right now, retry")

    def _rules(self, caller: Caller, change: _Change) -> list[RateLimit]:
        """Adding counts as creating, and requests as requests; a title, role or remove
        change counts as managing. All in the change's own transaction: a refused change
        counts nothing. Leaving is never limited."""
        if change.event.kind in ("title", "role", "removed"):
            return [RateLimit(f"manage#user#{caller.user_id}", self.limits.manages_per_minute, 60)]
        if not change.add:
            return []
        rules = [
            RateLimit(
                f"create#user#{caller.user_id}",
                self.limits.creates_per_user,
                self.limits.window_seconds,
            )
        ]
        if any(change.add.values()):
            rules.append(request_limit(caller.user_id, self.limits.requests_per_day))
        return rules

    def _announce(
        self, caller: Caller, conversation: Conversation, entry: StoredMessage, change: _Change
    ) -> None:
        # The entry goes to everyone it concerns: the members before the change (a
        # removed one's last push is their removal; it is within what they keep) and the
        # members added - the caller's devices too, this one included (the reply has its
        # seq, not the entry; clients drop a duplicate by seq).
        audience = conversation.members | set(change.add)
        self.delivery.to_users(audience, push(entry.wire()))
        requested = sorted(u for u, is_request in change.add.items() if is_request)
        if requested:
            members = sorted((conversation.members | set(change.add)) - change.remove)
            self.delivery.to_users(
                requested,
                push(
                    wire.ConversationRequest(
                        conversationId=conversation.conversation_id,
                        fromUserId=caller.user_id,
                        title=change.title or conversation.title,
                        listingId=conversation.listing_id,
                        members=members,
                    )
                ),
            )

    # ------------------------------------------------------------------ blocks
    def block(self, caller: Caller, data: wire.UserRef) -> wire.BlockChanged:
        if data.userId == caller.user_id:
            raise BadRequest("you cannot block yourself")
        self._count_block_change(caller)
        try:
            self.blocks.block(caller.user_id, data.userId)
        except BlockListFull:
            raise BadRequest("your block list is full: unblock someone first") from None
        if self.on_block is not None:
            self.on_block(caller.user_id, data.userId, self._now_ms())
        return wire.BlockChanged(userId=data.userId, blocked=True)

    def unblock(self, caller: Caller, data: wire.UserRef) -> wire.BlockChanged:
        self._count_block_change(caller)
        self.blocks.unblock(caller.user_id, data.userId)
        return wire.BlockChanged(userId=data.userId, blocked=False)

    def _count_block_change(self, caller: Caller) -> None:
        """One conditional counter update before the change (a refused one changes
        nothing): blocks are rare, the item they rewrite may be large."""
        rule = RateLimit(f"block#user#{caller.user_id}", self.limits.block_changes_per_minute, 60)
        now = self._now_ms()
        if not self.counters.consume(rule, now):
            raise RateLimited(
                f"rate limit reached: at most {rule.limit} per {rule.window_seconds} s",
                details={"retryAfterMs": rule.retry_after_ms(now)},
            )

    def list_blocks(self, caller: Caller) -> wire.BlockList:
        return wire.BlockList(userIds=sorted(self.blocks.blocked(caller.user_id)))


def request_limit(user_id: str, per_day: int) -> RateLimit:
    return RateLimit(f"requests#user#{user_id}", per_day, DAY_SECONDS)


@dataclass(frozen=True, slots=True)
class _Change:
    event: SystemEvent
    add: dict[str, bool] = field(default_factory=dict)  # user -> whether a request for them
    remove: set[str] = field(default_factory=set)
    roles: dict[str, str] | None = None  # the whole new map, when it changes
    title: str | None = None


def _roles(conversation: Conversation) -> dict[str, str]:
    return dict(conversation.roles) or {conversation.created_by: "owner"}


def _heir(conversation: Conversation, roles: dict[str, str], leaver: str) -> str | None:
    """Who owns a group its owner leaves: the first admin, else the first member who
    accepted it, else nobody (only requests left)."""
    admins = sorted(u for u, r in roles.items() if r == "admin" and u != leaver)
    if admins:
        return admins[0]
    accepted = sorted(conversation.accepted() - {leaver})
    return accepted[0] if accepted else None
