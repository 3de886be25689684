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
SESSIONS = "tests/integration/test_sessions.py"
CALLS = ("tests/unit/test_calls.py", "tests/integration/test_calls.py")
ROUTER = ("tests/unit/test_router.py", "tests/unit/test_auth.py", SESSIONS, MATRIX)
FIDELITY = ("tests/unit/test_moto_fidelity.py",)
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
        f"{LAYER}/messaging.py",
        "        if caller.user_id not in conversation.members:\n"
        '            raise Forbidden("you are not a member of this conversation")',
        "        if False:\n"
        '            raise Forbidden("you are not a member of this conversation")',
        (MATRIX,),
    ),
    Mutant(
        "non-member-syncs",
        "router authorization",
        f"{LAYER}/messaging.py",
        "            if caller.user_id not in conversation.members:\n"
        '                raise Forbidden(f"you are not a member of {conversation_id}")',
        "            if False:\n"
        '                raise Forbidden(f"you are not a member of {conversation_id}")',
        (MATRIX,),
    ),
    Mutant(
        "stranger-sees-presence",
        "router authorization",
        f"{LAYER}/messaging.py",
        "        if strangers:\n            raise Forbidden(",
        "        if False:\n            raise Forbidden(",
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
        "        if strangers:\n            raise Forbidden(\n",
        "        if strangers:\n"
        '            self.delivery.to_users(strangers, {"type": "presence", "data": '
        '{"userId": caller.user_id, "online": True, "lastSeen": None}})\n'
        "            raise Forbidden(\n",
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
        '"ConditionExpression": "lastSeq = :current AND contains(members, :sender)",',
        '"ConditionExpression": "contains(members, :sender)",',
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
        '"ConditionExpression": "lastSeq = :current AND contains(members, :sender)",',
        '"ConditionExpression": "lastSeq = :current",',
        (MESSAGING, SESSIONS, MATRIX),
        accepted="defence in depth: members never change after create, and the service "
        "checks membership on the item it just read, so no test can reach this guard",
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
        "        try:\n            tx.write(self.client)\n        except ClientError as exc:\n"
        "            reasons = tx.reasons(exc)\n            if not reasons:\n"
        "                raise\n            refused = tx.refused(exc)\n"
        '            if "idempotency" in refused:',
        "        for label, guard in []:\n            tx.update(label, guard)\n"
        "        try:\n            tx.write(self.client)\n        except ClientError as exc:\n"
        "            reasons = tx.reasons(exc)\n            if not reasons:\n"
        "                raise\n            refused = tx.refused(exc)\n"
        '            if "idempotency" in refused:',
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
