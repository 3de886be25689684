"""The hand-kept list of deliberate bugs `make mutate` plants, one at a time, in a temporary
copy of the repository (see tests/mutation/__main__.py and docs/testing.md).

Each mutant replaces one exact snippet of the product's code (it must occur exactly once:
when the code moves, the runner says which mutant no longer applies instead of testing
nothing). ``tests`` are the unit + integration files that guard the area, run with ``-x``;
a mutant survives if they all pass. ``accepted`` says why a survivor is tolerated.
"""

from __future__ import annotations

from dataclasses import dataclass

LAYER = "layers/common/switchboard"
MATRIX = "tests/integration/test_authorization_matrix.py"
MESSAGING = "tests/integration/test_messaging.py"
ORACLE = "tests/integration/test_conversation_oracle.py"
SESSIONS = "tests/integration/test_sessions.py"
CALLS = ("tests/unit/test_calls.py", "tests/integration/test_calls.py")
ROUTER = ("tests/unit/test_router.py", "tests/unit/test_auth.py", SESSIONS, MATRIX)
FIDELITY = ("tests/unit/test_moto_fidelity.py",)
CONSENT = "tests/integration/test_consent.py"
ABUSE_MESSAGING = "tests/integration/test_abuse_messaging.py"
NOTIFICATIONS = "tests/integration/test_notifications.py"
ANALYTICS = ("tests/unit/test_analytics.py", "tests/integration/test_analytics.py")
TYPING_CHECK = "    ) -> wire.TypingSent:\n"  # the plant goes first in typing()
# The state change of call:answer, and upload:complete's ownership check (the planted
# pushes go just before them).
CALL_ANSWER = (
    "        before, after = self.transition(\n"
    "            data.callId,\n"
    "            lambda call: join(_one_to_one(call),"
)
UPLOAD_COMPLETE = (
    "        record = self._owned(caller, data.uploadId)\n"
    "        if record.state in (UPLOADED, PROCESSING, COMPLETE, FAILED):"
)
# upload:get reads the caller's member item before deciding anything (the same calls
# whatever the upload is, or where and when it was shared).
UPLOAD_GET_MEMBER_READ = (
    "        member = self.conversations.member(conversation_id, caller.user_id)\n"
    "        if (\n"
    "            record is None\n"
)
LEFT_SHARES = "tests/integration/test_uploads_former_members.py"
MESSAGE_OPS = (
    "tests/unit/test_message_ops.py",
    "tests/integration/test_message_ops.py",
)
FAN_OUT = (
    "tests/unit/test_gateway.py",
    "tests/integration/test_delivery.py",
    MESSAGING,
    "tests/integration/test_notifications.py",
)


@dataclass(frozen=True)
class Mutant:
    name: str
    area: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]
    accepted: str = ""  # why it may survive (empty: it must be killed)


def _planted_push(event: str, lookup: str, outsider: str, targets: str, data: str) -> str:
    """Code that pushes ``event`` to ``targets`` when ``outsider`` holds (before the check
    that refuses the caller): the typing:start bug the effect log was built to catch, for
    any feature."""
    return (
        f"        planted = {lookup}\n"
        f"        if planted is not None and {outsider}:\n"
        f'            self.delivery.to_users({targets}, {{"type": "{event}", "data": {data}}})\n'
    )


MUTANTS: list[Mutant] = [
    # ------------------------------------------------------------ router's authorization
    Mutant(
        "router-expired-token-accepted",
        "router authorization",
        f"{LAYER}/router.py",
        "if check_expiry and token_exp < self._clock():",
        "if False and check_expiry and token_exp < self._clock():",
        ROUTER,
    ),
    Mutant(
        "router-refreshed-expiry-ignored",
        "router authorization",
        f"{LAYER}/router.py",
        "token_exp = max(token_exp, self._refreshed_token_exp(ctx.connection_id))",
        "token_exp = token_exp",
        ROUTER,
    ),
    Mutant(
        "router-everyone-admin",
        "router authorization",
        f"{LAYER}/router.py",
        'return "admin" in self.roles',
        "return True",
        ROUTER,
    ),
    Mutant(
        "non-member-reaches-conversation",
        "router authorization",
        f"{LAYER}/membership.py",
        "    if conversation is None or caller.user_id not in conversation.members:\n"
        "        raise conversation_not_found()",
        "    if conversation is None:\n        raise conversation_not_found()",
        (MATRIX,),
    ),
    # the "who talks to whom" oracle: a non-member told the conversation exists
    Mutant(
        "non-member-told-the-conversation-exists",
        "router authorization",
        f"{LAYER}/membership.py",
        "    if conversation is None or caller.user_id not in conversation.members:\n"
        "        raise conversation_not_found()",
        "    if conversation is None:\n"
        "        raise conversation_not_found()\n"
        "    if caller.user_id not in conversation.members:\n"
        '        raise Forbidden("you are not a member of this conversation")',
        (ORACLE, MATRIX),
    ),
    Mutant(
        "non-member-told-the-history-exists",
        "router authorization",
        f"{LAYER}/membership.py",
        "        if member is None or member.left_seq is None:\n"
        "            raise conversation_not_found()",
        "        if member is None or member.left_seq is None:\n"
        '            raise Forbidden("you are not a member of this conversation")',
        (ORACLE, MATRIX),
    ),
    Mutant(
        "upload-get-reads-the-member-only-where-shared",
        "router authorization",
        f"{LAYER}/uploads.py",
        UPLOAD_GET_MEMBER_READ,
        "        if record is None or record.state != COMPLETE"
        " or conversation_id not in record.sharedIn:\n"
        "            return None\n" + UPLOAD_GET_MEMBER_READ,
        (ORACLE,),
    ),
    Mutant(
        "upload-get-reads-no-member-for-an-unknown-upload",
        "router authorization",
        f"{LAYER}/uploads.py",
        UPLOAD_GET_MEMBER_READ,
        "        if record is None:\n            return None\n" + UPLOAD_GET_MEMBER_READ,
        (LEFT_SHARES,),
    ),
    # ------------------------------------------------------------ files and former members
    Mutant(
        "former-member-downloads-what-was-shared-after-they-left",
        "router authorization",
        f"{LAYER}/uploads.py",
        "        if member.left_seq is not None and not _shared_by(",
        "        if False and member.left_seq is not None and not _shared_by(",
        (LEFT_SHARES,),
    ),
    Mutant(
        "a-later-share-overwrites-the-first-shares-seq",
        "router authorization",
        f"{LAYER}/dal/uploads.py",
        "SET #first = if_not_exists(#first, :seq)",
        "SET #first = :seq",
        (LEFT_SHARES,),
    ),
    Mutant(
        "an-upload-is-shared-in-any-number-of-conversations",
        "router authorization",
        f"{LAYER}/dal/uploads.py",
        '            "(attribute_not_exists(sharedIn) OR size(sharedIn) < :most"\n',
        '            "(attribute_not_exists(sharedIn) OR size(sharedIn) < :most"'
        ' " OR size(sharedIn) >= :most"\n',  # always true
        (LEFT_SHARES,),
    ),
    Mutant(
        "former-member-starts-a-recording-for-the-conversation",
        "router authorization",
        f"{LAYER}/uploads.py",
        "            if member is None or member.left_seq is not None:\n"
        '                raise Forbidden("you are not a member of the call\'s conversation")',
        "            if member is None:\n"
        '                raise Forbidden("you are not a member of the call\'s conversation")',
        ("tests/integration/test_calls_media.py",),
    ),
    Mutant(
        "an-unshare-keeps-the-first-shares-seq",
        "router authorization",
        f"{LAYER}/dal/message_changes.py",
        '            "UpdateExpression": "DELETE sharedIn :conversation REMOVE #first",\n'
        '            "ConditionExpression": "attribute_exists(uploadId)",\n'
        '            "ExpressionAttributeNames": '
        '{"#first": shared_seq_attribute(conversation_id)},\n',
        '            "UpdateExpression": "DELETE sharedIn :conversation",\n'
        '            "ConditionExpression": "attribute_exists(uploadId)",\n',
        (LEFT_SHARES,),
    ),
    Mutant(
        "call-invite-rings-in-a-non-member",
        "router authorization",
        f"{LAYER}/calls/service.py",
        "            if conversation is None or not set(data.userIds) <= conversation.members:",
        "            if conversation is None:",
        CALLS,
    ),
    Mutant(
        "unknown-conversation-answers-faster",
        "router authorization",
        f"{LAYER}/membership.py",
        "        self.conversations.member(conversation_id, caller.user_id)\n"
        "        return conversation_not_found()",
        "        return conversation_not_found()",
        (ORACLE,),
    ),
    Mutant(
        "non-member-syncs",
        "router authorization",
        f"{LAYER}/messaging.py",
        "c for c in data.cursors if c not in found or caller.user_id not in found[c].members",
        "c for c in data.cursors if c not in found",
        (MATRIX,),
    ),
    Mutant(
        "stranger-sees-presence",
        "router authorization",
        f"{LAYER}/messaging.py",
        "        if wanted - self.consent.contacts(caller.user_id, wanted):\n",
        "        if False:\n",
        (MATRIX,),
    ),
    Mutant(
        "stranger-uses-upload",
        "router authorization",
        f"{LAYER}/uploads.py",
        "if record is None or record.ownerId != caller.user_id:",
        "if record is None:",
        (MATRIX,),
    ),
    Mutant(
        "non-admin-revokes",
        "router authorization",
        f"{LAYER}/sessions.py",
        "        if not caller.is_admin:",
        "        if False:",
        (MATRIX,),
    ),
    # ------------------------------------------------------------ a push before a refusal
    Mutant(
        "typing-pushed-before-forbidden",  # the bug docs/testing.md starts from
        "push before refusal",
        f"{LAYER}/messaging.py",
        TYPING_CHECK,
        TYPING_CHECK
        + _planted_push(
            "typing",
            "self.conversations.get(data.conversationId)",
            "caller.user_id not in planted.members",
            "planted.members",
            '{"conversationId": planted.conversation_id, "userId": caller.user_id, "state": state}',
        ),
        (MATRIX,),
    ),
    Mutant(
        "message-pushed-before-forbidden",
        "push before refusal",
        f"{LAYER}/messaging.py",
        "        rules = self._send_limits(caller)\n",
        _planted_push(
            "message:new",
            "self.conversations.get(data.conversationId)",
            "caller.user_id not in planted.members",
            "planted.members",
            '{"conversationId": planted.conversation_id, "seq": 0, "body": data.body}',
        )
        + "        rules = self._send_limits(caller)\n",
        (MATRIX,),
    ),
    Mutant(
        "receipt-pushed-before-forbidden",
        "push before refusal",
        f"{LAYER}/messaging.py",
        '        """message:ack (cursor ackedSeq) and message:read (readSeq)."""\n',
        '        """message:ack (cursor ackedSeq) and message:read (readSeq)."""\n'
        + _planted_push(
            "message:delivered",
            "self.conversations.get(data.conversationId)",
            "caller.user_id not in planted.members",
            "planted.members",
            '{"conversationId": planted.conversation_id, "seq": data.seq, '
            '"userId": caller.user_id}',
        ),
        (MATRIX,),
    ),
    Mutant(
        "presence-pushed-before-forbidden",
        "push before refusal",
        f"{LAYER}/messaging.py",
        "        if wanted - self.consent.contacts(caller.user_id, wanted):\n"
        "            raise refused\n",
        "        if wanted - self.consent.contacts(caller.user_id, wanted):\n"
        '            self.delivery.to_users(wanted, {"type": "presence", "data": '
        '{"userId": caller.user_id, "online": True, "lastSeen": None}})\n'
        "            raise refused\n",
        (MATRIX,),
    ),
    Mutant(
        "call-answer-pushed-before-forbidden",
        "push before refusal",
        f"{LAYER}/calls/service.py",
        CALL_ANSWER,
        _planted_push(
            "call:answered",
            "self.calls.get(data.callId)",
            "caller.user_id not in planted.participants",
            "[planted.caller_id]",
            '{"callId": planted.call_id, "fromUserId": caller.user_id}',
        )
        + CALL_ANSWER,
        (MATRIX,),
    ),
    Mutant(
        "upload-progress-pushed-before-not-found",
        "push before refusal",
        f"{LAYER}/uploads.py",
        UPLOAD_COMPLETE,
        _planted_push(
            "upload:progress",
            "self.uploads.get(data.uploadId)",
            "planted.ownerId != caller.user_id",
            "[planted.ownerId]",
            '{"uploadId": planted.uploadId, "percent": 100}',
        )
        + UPLOAD_COMPLETE,
        (MATRIX,),
    ),
    Mutant(
        "revoke-closes-before-forbidden",
        "push before refusal",
        f"{LAYER}/sessions.py",
        "        if not caller.is_admin:",
        "        self.gateway.close_all(self.users.connection_ids(user_id))\n"
        "        if not caller.is_admin:",
        (MATRIX,),
    ),
    # ------------------------------------------------------------ the send transaction
    Mutant(
        "send-without-seq-guard",
        "send transaction",
        f"{LAYER}/dal/conversations.py",
        '"ConditionExpression": "lastSeq = :current AND contains(members, :sender)"\n',
        '"ConditionExpression": "contains(members, :sender)"\n',
        (MESSAGING, SESSIONS),
        accepted="equivalent: the message Put's attribute_not_exists(seq) in the same "
        "transaction refuses a second message with the same seq, so a stale lastSeq still "
        "cancels the send (and the retry reads the new lastSeq)",
    ),
    Mutant(
        "send-overwrites-a-seq",
        "send transaction",
        f"{LAYER}/dal/conversations.py",
        '"ConditionExpression": "attribute_not_exists(seq)",',
        '"ConditionExpression": "attribute_not_exists(seq) OR attribute_exists(seq)",',
        (MESSAGING, SESSIONS),
        accepted="equivalent: the conversation's lastSeq = :current condition in the same "
        "transaction already makes the seq unique; each guard alone suffices",
    ),
    Mutant(
        "send-without-membership-guard",
        "send transaction",
        f"{LAYER}/dal/conversations.py",
        '"ConditionExpression": "lastSeq = :current AND contains(members, :sender)"\n',
        '"ConditionExpression": "lastSeq = :current"\n',
        (MESSAGING, SESSIONS, MATRIX),
        accepted="defence in depth: every membership change moves lastSeq (a system "
        "entry), and the service checks membership on the item it just read, so the seq "
        "guard already refuses a send that read the members before a removal",
    ),
    Mutant(
        "send-twice-for-one-client-id",
        "send transaction",
        f"{LAYER}/dal/conversations.py",
        '"ConditionExpression": "attribute_not_exists(sk)",',
        '"ConditionExpression": "attribute_not_exists(sk) OR attribute_exists(sk)",',
        (MESSAGING,),
    ),
    Mutant(
        "send-skips-a-seq",
        "send transaction",
        f"{LAYER}/messaging.py",
        "seq=conversation.last_seq + 1,",
        "seq=conversation.last_seq + 2,",
        (MESSAGING,),
    ),
    Mutant(
        "send-not-rate-limited",
        "send transaction",
        f"{LAYER}/dal/conversations.py",
        "        for label, guard in guards.items():\n            tx.update(label, guard)\n"
        "        for label, check in checks.items():\n",
        "        for label, guard in []:\n            tx.update(label, guard)\n"
        "        for label, check in checks.items():\n",
        (SESSIONS,),
    ),
    Mutant(
        "send-gives-up-on-a-race",
        "send transaction",
        f"{LAYER}/messaging.py",
        "            except SeqConflict:\n",
        "            except SeqConflict:\n"
        '                raise Conflict("the conversation is too busy right now")\n',
        (MESSAGING,),
    ),
    # ------------------------------------------------------------ fan-out
    Mutant(
        "fan-out-echoes-to-the-sender",
        "fan-out",
        f"{LAYER}/delivery.py",
        "if connection_id != exclude_connection",
        "if connection_id != exclude_connection or True",
        FAN_OUT,
    ),
    Mutant(
        "fan-out-one-device-per-user",
        "fan-out",
        f"{LAYER}/delivery.py",
        "for connection_id in p.connection_ids",
        "for connection_id in sorted(p.connection_ids)[:1]",
        FAN_OUT,
    ),
    Mutant(
        "fan-out-drops-failed-pushes",
        "fan-out",
        f"{LAYER}/delivery.py",
        "        if result.failed:",
        "        if False:",
        FAN_OUT,
    ),
    Mutant(
        "fan-out-keeps-gone-connections",
        "fan-out",
        f"{LAYER}/delivery.py",
        "for connection_id in report.gone:",
        "for connection_id in report.gone[:0]:",
        FAN_OUT,
    ),
    Mutant(
        "fan-out-nobody-offline",
        "fan-out",
        f"{LAYER}/delivery.py",
        "report.offline_users = [u for u, p in presence.items() if not p.online]",
        "report.offline_users = []",
        FAN_OUT,
    ),
    # ------------------------------------------------------------ the aggregator's marker
    Mutant(
        "aggregator-marker-unconditional",
        "aggregator exactly-once",
        f"{LAYER}/dal/metrics.py",
        '"ConditionExpression": "attribute_not_exists(pk)",',
        '"ConditionExpression": "attribute_not_exists(pk) OR attribute_exists(pk)",',
        ANALYTICS,
    ),
    Mutant(
        "aggregator-marker-unique-per-attempt",
        "aggregator exactly-once",
        f"{LAYER}/dal/metrics.py",
        '**_key(f"marker#{marker}", "#"),',
        '**_key(f"marker#{marker}#{time.time_ns()}", "#"),',
        ANALYTICS,
    ),
    Mutant(
        "aggregator-message-marker-too-coarse",
        "aggregator exactly-once",
        f"{LAYER}/analytics/records.py",
        "marker=f\"msg#{conversation_id}#{item['seq']}\",",
        'marker=f"msg#{conversation_id}",',
        ANALYTICS,
    ),
    # ------------------------------------------------------------ the call state machine
    Mutant(
        "call-answered-twice",
        "call state machine",
        f"{LAYER}/calls/model.py",
        "    if not call.live or me.state is not PartState.INVITED:\n"
        '        raise CallConflict("call_not_ringing", f"the call is',
        '    if not call.live:\n        raise CallConflict("call_not_ringing", f"the call is',
        CALLS,
    ),
    Mutant(
        "call-declined-after-joining",
        "call state machine",
        f"{LAYER}/calls/model.py",
        "    if not call.live or me.state is not PartState.INVITED:\n"
        '        raise CallConflict("call_not_ringing", "the call is not ringing for you")',
        "    if not call.live:\n"
        '        raise CallConflict("call_not_ringing", "the call is not ringing for you")',
        CALLS,
    ),
    Mutant(
        "call-caller-hangup-not-a-cancel",
        "call state machine",
        f"{LAYER}/calls/model.py",
        'if call.state is CallState.RINGING and me.role == "caller":',
        "if False:",
        CALLS,
    ),
    Mutant(
        "call-timeout-misses-a-joined-callee",
        "call state machine",
        f"{LAYER}/calls/model.py",
        "if call.live and me is not None and me.state is PartState.INVITED:",
        "if call.live and me is not None:",
        CALLS,
    ),
    Mutant(
        "call-survives-with-one-participant",
        "call state machine",
        f"{LAYER}/calls/model.py",
        "if len(remaining) >= 2 and any(p.state is PartState.JOINED for p in remaining):",
        "if len(remaining) >= 1 and any(p.state is PartState.JOINED for p in remaining):",
        CALLS,
    ),
    Mutant(
        "call-over-capacity",
        "call state machine",
        f"{LAYER}/calls/model.py",
        "    if len(callees) + 1 > max_participants:",
        "    if len(callees) > max_participants:",
        CALLS,
    ),
    Mutant(
        "call-write-ignores-version",
        "call state machine",
        f"{LAYER}/calls/repository.py",
        '"ConditionExpression": "version = :v",',
        '"ConditionExpression": "version = :v OR attribute_exists(pk)",',
        CALLS,
    ),
    # ------------------------------------------------------------ message operations
    Mutant(
        "anyone-edits-a-message",
        "message operations",
        f"{LAYER}/message_ops.py",
        "            if message.sender_id != caller.user_id:\n"
        '                raise Forbidden("only its sender may edit a message")',
        "            if False:\n"
        '                raise Forbidden("only its sender may edit a message")',
        MESSAGE_OPS,
    ),
    Mutant(
        "anyone-deletes-a-message",
        "message operations",
        f"{LAYER}/message_ops.py",
        "            if message.sender_id != caller.user_id:\n"
        '                raise Forbidden("only its sender may delete a message")',
        "            if False:\n"
        '                raise Forbidden("only its sender may delete a message")',
        MESSAGE_OPS,
    ),
    Mutant(
        "edit-window-ignored",
        "message operations",
        f"{LAYER}/message_ops.py",
        "if now - message.created_at > self.limits.edit_window_seconds * 1000:",
        "if False:",
        MESSAGE_OPS,
    ),
    Mutant(
        "tombstone-keeps-the-text",
        "message operations",
        f"{LAYER}/message_ops.py",
        'return replace(message, body="", attachments=[], reactions={}, deleted_at=now)',
        "return replace(message, deleted_at=now)",
        MESSAGE_OPS,
    ),
    Mutant(
        "quote-of-a-deleted-message-keeps-its-text",
        "message operations",
        f"{LAYER}/message_ops.py",
        "    if message is None or message.deleted_at:\n        return Quote(",
        "    if message is None:\n        return Quote(",
        MESSAGE_OPS,
    ),
    Mutant(
        "list-preview-outlives-a-delete",
        "message operations",
        f"{LAYER}/dal/message_changes.py",
        'if last is not None and int(last.get("seq", 0)) == after.seq:',
        "if False:",
        MESSAGE_OPS,
    ),
    Mutant(
        "reaction-twice-is-two",
        "message operations",
        f"{LAYER}/message_ops.py",
        "                if me in users:\n                    return None",
        "                if False:\n                    return None",
        MESSAGE_OPS,
    ),
    Mutant(
        "mute-ignored-by-the-notifier",
        "message operations",
        f"{LAYER}/notifier.py",
        "        elif member.muted_until > int(self._clock() * 1000):",
        "        elif False:",
        MESSAGE_OPS,
    ),
    Mutant(
        "blocked-user-edits-and-reacts",
        "message operations",
        f"{LAYER}/message_ops.py",
        "            checks = self._consent_checks(caller, conversation) if reaches else {}",
        "            checks = {}",
        MESSAGE_OPS,
    ),
    Mutant(
        "deleted-message-takes-thread-replies",
        "message operations",
        f"{LAYER}/dal/message_changes.py",
        '                " AND attribute_not_exists(deletedAt)"',
        '                ""',
        MESSAGE_OPS,
    ),
    Mutant(
        "former-member-sees-later-changes",
        "message operations",
        f"{LAYER}/message_ops.py",
        "    if left_at is not None:\n        messages = [as_left(m, left_at) for m in messages]",
        "    if False:\n        messages = [as_left(m, left_at) for m in messages]",
        MESSAGE_OPS,
    ),
    Mutant(
        "thread-page-without-a-reply",
        "message operations",
        f"{LAYER}/message_ops.py",
        "        fit = fitting(wired[1:], rest)\n",
        "        fit = fitting(wired) - 1\n",
        MESSAGE_OPS,
    ),
    # ------------------------------------------------------------ consent and membership
    Mutant(
        "send-ignores-blocks",
        "consent",
        f"{LAYER}/messaging.py",
        '        return {"consent": self.blocks.not_blocked_check(other, caller.user_id)}',
        "        return {}",
        (CONSENT,),
    ),
    Mutant(
        "requester-sees-the-recipients-typing",
        "consent",
        f"{LAYER}/messaging.py",
        "        if caller.user_id in conversation.pending or not others:",
        "        if not others:",
        (CONSENT,),
    ),
    Mutant(
        "leaver-stays-a-member",
        "consent",
        f"{LAYER}/dal/membership.py",
        'expression += " DELETE members :remove, pending :remove"',
        'expression += " DELETE pending :remove"',
        (CONSENT,),
    ),
    Mutant(
        "repeated-send-pushes-past-a-block",
        "consent",
        f"{LAYER}/messaging.py",
        "if not refused_here and self.counters.consume(",
        "if self.counters.consume(",
        (ABUSE_MESSAGING,),
    ),
    Mutant(
        "repeated-send-pushes-past-a-decline",
        "consent",
        f"{LAYER}/messaging.py",
        'refused_here = "consent" in refused or conversation.declined_by is not None',
        'refused_here = "consent" in refused',
        (ABUSE_MESSAGING,),
    ),
    Mutant(
        "repeated-send-racing-a-send-not-pushed",
        "consent",
        f"{LAYER}/messaging.py",
        'refused_here = "consent" in refused or conversation.declined_by is not None',
        'refused_here = bool(refused & {"consent", "meta"})',
        (ABUSE_MESSAGING,),
    ),
    Mutant(
        "repeated-send-pushes-uncounted",
        "rate limits",
        f"{LAYER}/messaging.py",
        "self.counters.consume(repeats, self._now_ms()):",
        "self.counters.consume(repeats, self._now_ms()) | True:",
        (ABUSE_MESSAGING,),
    ),
    Mutant(
        "sync-reads-each-leave-apart",
        "rate limits",
        f"{LAYER}/messaging.py",
        "        former = self.conversations.memberships(caller.user_id, outside, consistent=True)",
        "        former = {c: m for c in outside if (m := self.conversations.member(c, caller.user_id))}",  # noqa: E501
        (ABUSE_MESSAGING,),
    ),
    Mutant(
        "block-changes-uncounted",
        "rate limits",
        f"{LAYER}/membership.py",
        "        if not self.counters.consume(rule, now):\n            raise RateLimited(\n"
        '                f"rate limit reached: at most {rule.limit} per {rule.window_seconds} s",\n'
        '                details={"retryAfterMs": rule.retry_after_ms(now)},\n            )\n',
        "        pass\n",
        (CONSENT,),
    ),
    Mutant(
        "calls-uncounted",
        "rate limits",
        f"{LAYER}/calls/service.py",
        "        self._count_ring(caller, now)\n",
        "",
        ("tests/integration/test_abuse_calls.py",),
    ),
    # ------------------------------------------------------------ calls across a block
    Mutant(
        "calls-pair-a-blocked-stalker",
        "calls across a block",
        f"{LAYER}/calls/service.py",
        "            other != callee and (other in states[callee].blocked"
        " or callee in states[other].blocked)",
        "            other == caller.user_id and other in states[callee].blocked",
        ("tests/integration/test_calls_blocks.py",),
    ),
    Mutant(
        "calls-relay-across-a-block-made-in-the-call",
        "calls across a block",
        f"{LAYER}/calls/service.py",
        "        if target.connection_id is None or call.is_apart(sender.user_id, target.user_id):",
        "        if target.connection_id is None:",
        ("tests/integration/test_calls_blocks.py",),
    ),
    Mutant(
        "calls-invite-unchecked-after-joining",
        "calls across a block",
        f"{LAYER}/calls/service.py",
        "            if after is not current and (",
        "            if joined and after is not current and (",
        ("tests/integration/test_calls_blocks.py",),
    ),
    Mutant(
        "calls-offer-kept-past-a-block",
        "calls across a block",
        f"{LAYER}/calls/model.py",
        "    offer = None if call.caller_id in pair and not call.group else call.offer",
        "    offer = call.offer",
        ("tests/integration/test_calls_blocks.py",),
    ),
    Mutant(
        "conversation-page-over-one-message",
        "rate limits",
        f"{LAYER}/messaging.py",
        "            if budget < 0 and len(items) > 1:\n"
        "                items.pop()\n                break\n",
        "",
        ("tests/integration/test_abuse_membership.py",),
    ),
    Mutant(
        "thread-change-and-notification-pages-over-one-message",
        "rate limits",
        f"{LAYER}/message_ops.py",
        "        budget -= len(to_json(item.wire()))\n        if budget < 0:",
        "        budget -= len(to_json(item.wire()))\n        if False:",
        (*MESSAGE_OPS, NOTIFICATIONS),
    ),
    # ------------------------------------------------------------ notifications' cost
    Mutant(
        "unread-notifications-listed-in-unbounded-queries",
        "rate limits",
        f"{LAYER}/dal/notifications.py",
        "        for _ in range(PAGE_QUERIES):",
        "        while True:",
        (NOTIFICATIONS,),
    ),
    Mutant(
        "notification-read-writes-every-id",
        "rate limits",
        f"{LAYER}/dal/notifications.py",
        "        for notification_id in unread:",
        "        for notification_id in notification_ids:",
        (NOTIFICATIONS,),
    ),
    Mutant(
        "notification-preview-shows-an-edit-after-the-leave",
        "consent",
        f"{LAYER}/message_ops.py",
        "    left_at = _left_at(conversations, user_id, late) if late else {}",
        "    left_at: dict[str, int] = {}",
        (NOTIFICATIONS,),
    ),
    Mutant(
        "terminal-chat-prints-controls",
        "python client",
        "switchboard_client/cli.py",
        '        self.out.write(terminal_safe(text) + "\\n")',
        '        self.out.write(text + "\\n")',
        ("tests/unit/test_cli.py",),
    ),
    Mutant(
        "receipt-held-back-by-a-stale-request",
        "consent",
        f"{LAYER}/messaging.py",
        "moved.folder == inbox(caller.user_id)",
        "caller.user_id not in conversation.pending",  # the conversation read before the write
        (CONSENT,),
    ),
    Mutant(
        "receipt-from-someone-declined-or-removed-meanwhile",
        "consent",
        f"{LAYER}/messaging.py",
        "moved.folder == inbox(caller.user_id)",
        'moved.folder != f"requests#{caller.user_id}"',  # any item but a request's
        (CONSENT,),
    ),
    Mutant(
        "backlog-reads-the-inbox-before-the-requests",
        "consent",
        f"{LAYER}/backlog.py",
        "        requests = self.conversations.inbox(user_id, RECENT_CONVERSATIONS,"
        " requests=True)\n"
        "        accepted = self.conversations.inbox(user_id, RECENT_CONVERSATIONS).members\n",
        "        accepted = self.conversations.inbox(user_id, RECENT_CONVERSATIONS).members\n"
        "        requests = self.conversations.inbox(user_id, RECENT_CONVERSATIONS,"
        " requests=True)\n",
        (CONSENT, "tests/integration/test_abuse_membership.py"),
    ),
    # ------------------------------------------------------------ connecting in a loop
    Mutant(
        "connects-unlimited",
        "abuse limits",
        f"{LAYER}/dal/connections.py",
        "            if self._connect_limit is not None:",
        "            if False:",
        (SESSIONS,),
    ),
    Mutant(
        "connect-counted-outside-its-transaction",
        "abuse limits",
        f"{LAYER}/dal/connections.py",
        '                tx.update("rate", limiter.update(rule, connection.connected_at))',
        "                if not limiter.consume(rule, connection.connected_at):\n"
        "                    raise TooManyConnects(connection.user_id)",
        (SESSIONS,),
    ),
    # ------------------------------------------------------------ the emulator itself
    Mutant(
        "emulator-keeps-a-rolled-back-stream-record",
        "emulator (moto_fidelity)",
        "devserver/moto_fidelity.py",
        "        del shard.items[length:]",
        "        pass",
        FIDELITY,
    ),
    Mutant(
        "emulator-applies-despite-a-failed-condition",
        "emulator (moto_fidelity)",
        "devserver/moto_fidelity.py",
        "    if any(code is not None for code, _, _ in errors):",
        "    if False:",
        FIDELITY,
    ),
]
