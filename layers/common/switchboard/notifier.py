"""Offline recipients: in-app notifications and digested e-mail.

Producers (a send with offline members, a missed call) put jobs on the notification
queue (queues.py); this consumer records the notification (idempotent on its id), pushes
``notification:new`` if the user came online meanwhile, and e-mails per preferences: at
most one e-mail per conversation per digest window; messages that arrive inside the
window are summarised by one digest e-mail when the window ends (a delayed SQS job).

Mail goes only to an address its owner verified (preferences.py): a job for an
unverified address sends nothing but the verification mail itself. Every user gets at
most ``daily_mail_limit`` mails a day, whatever their conversations do, and every
notification mail carries ``List-Unsubscribe`` (RFC 2369) with one-click POST (RFC 8058)
to the unsubscribe endpoint (functions/message/unsubscribe.py).

A message job is checked against the conversation as it is when the job runs (one
BatchGetItem of the member item and the message): nothing is recorded or mailed for a
conversation the user muted (until ``mutedUntil``) or left, nor for a message deleted
meanwhile; an edited one is previewed as edited (message_ops.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from switchboard import aws
from switchboard.dal.conversations import ConversationRepository
from switchboard.dal.message_changes import MessageChangeRepository
from switchboard.dal.notifications import Notification, NotificationRepository
from switchboard.dal.ratelimits import RateLimit, RateLimiter, WindowLimiter
from switchboard.dal.users import Preferences, UserRepository
from switchboard.delivery import Delivery
from switchboard.observability import logger
from switchboard.preferences import code_hash
from switchboard.protocol import push
from switchboard.queues import (
    MAX_SQS_DELAY_SECONDS,
    VERIFY_EMAIL,
    NotificationJob,
    NotificationQueue,
)

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client


class Mailer:
    def __init__(self, sender: str, *, client: SESV2Client | None = None) -> None:
        self.sender = sender
        self._client = client

    @property
    def client(self) -> SESV2Client:
        if self._client is None:
            self._client = aws.sesv2()
        return self._client

    def send(self, to: str, subject: str, text: str, headers: dict[str, str] | None = None) -> None:
        self.client.send_email(
            FromEmailAddress=self.sender,
            Destination={"ToAddresses": [to]},
            Content={
                "Simple": {
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"}},
                    "Headers": [{"Name": k, "Value": v} for k, v in (headers or {}).items()],
                }
            },
        )


class NotificationService:
    def __init__(
        self,
        notifications: NotificationRepository,
        users: UserRepository,
        conversations: ConversationRepository,
        delivery: Delivery,
        limiter: WindowLimiter,
        queue: NotificationQueue,
        mailer: Mailer,
        *,
        counters: RateLimiter,
        unsubscribe_url: str,
        daily_mail_limit: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.notifications = notifications
        self.users = users
        self.conversations = conversations
        self.delivery = delivery
        self.limiter = limiter
        self.queue = queue
        self.mailer = mailer
        self.counters = counters
        self.unsubscribe_url = unsubscribe_url
        self.daily_mail_limit = daily_mail_limit
        self._clock = clock

    def handle(self, job: NotificationJob) -> None:
        if job.kind == "digest":
            self._send_digest(job)
            return
        if job.kind == VERIFY_EMAIL:
            self._send_verification(job)
            return
        if job.kind == "message":
            current = self._as_of_now(job)
            if current is None:
                return
            job = current
        notification = Notification(
            user_id=job.user_id,
            notification_id=f"{job.created_at:013d}#{job.source}",
            kind=job.kind,
            data=job.data,
            created_at=job.created_at,
        )
        if self.notifications.add(notification):
            self.delivery.to_users([job.user_id], push(notification.wire()))
        self._maybe_email(job)

    def _as_of_now(self, job: NotificationJob) -> NotificationJob | None:
        """The message job with the message's current preview; None if the user muted or
        left the conversation, or the message is gone."""
        seq = job.data.get("seq")
        if job.conversation_id is None or not isinstance(seq, int):
            return job
        member, message = MessageChangeRepository(self.conversations).member_and_message(
            job.conversation_id, job.user_id, seq
        )
        reason = None
        if member is None:
            reason = "not a member"
        elif member.muted_until > int(self._clock() * 1000):
            reason = "muted"
        elif message is None or message.deleted_at:
            reason = "deleted"
        if reason is not None:
            logger.info("message notification skipped", extra={"reason": reason})
            return None
        assert message is not None
        return replace(job, data={**job.data, "preview": message.body[:200]})

    # ------------------------------------------------------------------ e-mail
    @staticmethod
    def _mailable(prefs: Preferences) -> tuple[str, str] | None:
        """Where notification mail may go (the address and its unsubscribe token): mail
        on, and the address verified by its owner."""
        # (the unsubscribe token is set with the verification)
        if prefs.email_on_offline and prefs.email and prefs.email_verified:
            return (prefs.email, prefs.unsubscribe_token) if prefs.unsubscribe_token else None
        return None

    def _within_daily_cap(self, user_id: str) -> bool:
        rule = RateLimit(f"mail#user#{user_id}", self.daily_mail_limit, 86_400)
        if self.counters.consume(rule, int(self._clock() * 1000)):
            return True
        logger.warning("daily mail cap reached", extra={"userId": user_id})
        return False

    def _send(self, user_id: str, to: tuple[str, str], subject: str, text: str) -> None:
        address, token = to
        link = f"{self.unsubscribe_url}?" + urlencode({"u": user_id, "t": token})
        self.mailer.send(
            address,
            subject,
            text + f"\n\nTo stop these e-mails: {link}",
            {
                "List-Unsubscribe": f"<{link}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )

    def _send_verification(self, job: NotificationJob) -> None:
        prefs = self.users.preferences(job.user_id)
        address = str(job.data.get("email", ""))
        code = str(job.data.get("code", ""))
        # Sent only while the address and the code are still the pending ones (a later
        # set replaced them, even with the same address, or the address was verified
        # meanwhile: this job is stale, its code would not work).
        if prefs.email != address or prefs.email_verified:
            return
        if self.users.pending_code_hash(job.user_id) != code_hash(job.user_id, address, code):
            return
        if not self._within_daily_cap(job.user_id):
            return
        self.mailer.send(
            address,
            f"Your Switchboard code: {code}",
            f"Enter {code} in Switchboard to receive notifications at"
            f" this address. The code is valid for an hour.\n\nIf you did not ask for this,"
            " ignore this e-mail: nothing more will be sent here unless the code is entered.",
        )
        logger.info("verification email sent", extra={"userId": job.user_id})

    def _maybe_email(self, job: NotificationJob) -> None:
        prefs = self.users.preferences(job.user_id)
        to = self._mailable(prefs)
        if to is None:
            return
        now = int(self._clock() * 1000)
        window_ms = prefs.digest_minutes * 60_000
        thread = job.conversation_id or job.kind
        if self.limiter.acquire(f"email#{job.user_id}#{thread}", now, window_ms):
            if self._within_daily_cap(job.user_id):
                subject, text = _single_email(job)
                self._send(job.user_id, to, subject, text)
                logger.info("email sent", extra={"userId": job.user_id, "emailThread": thread})
            return
        # Inside the window: one digest at its end summarises everything that came since.
        if self.limiter.acquire(f"digest#{job.user_id}#{thread}", now, window_ms):
            delay = min(MAX_SQS_DELAY_SECONDS, prefs.digest_minutes * 60)
            digest = NotificationJob(
                kind="digest",
                user_id=job.user_id,
                created_at=now,
                source=f"digest#{thread}#{now}",
                conversation_id=job.conversation_id,
            )
            self.queue.enqueue([digest], delay_seconds=delay)

    def _send_digest(self, job: NotificationJob) -> None:
        thread = job.conversation_id or "notifications"
        self.limiter.release(f"digest#{job.user_id}#{thread}")
        prefs = self.users.preferences(job.user_id)
        to = self._mailable(prefs)
        if to is None or job.conversation_id is None:
            return
        conversation = self.conversations.get(job.conversation_id)
        member = self.conversations.member(job.conversation_id, job.user_id)
        if conversation is None or member is None or member.left_seq is not None:
            return  # a former member gets nothing more from it, least of all later messages
        if member.muted_until > int(self._clock() * 1000):
            return  # muted meanwhile: the window's messages are not mailed either
        unread = conversation.last_seq - member.read_seq
        if unread <= 0:
            return
        recent = self.conversations.messages_before(job.conversation_id, None, min(unread, 5))
        now = int(self._clock() * 1000)
        # Restart the window: the digest is this window's e-mail.
        self.limiter.force(f"email#{job.user_id}#{thread}", now, prefs.digest_minutes * 60_000)
        title = conversation.title or "a conversation"
        lines = [
            f"{m.sender_id}: {'(message deleted)' if m.deleted_at else m.body[:200]}"
            for m in recent
        ]
        if not self._within_daily_cap(job.user_id):
            return
        self._send(
            job.user_id,
            to,
            f"{unread} unread message{'s' if unread != 1 else ''} in {title}",
            "\n".join(lines) + "\n\nOpen Switchboard to read and reply.",
        )
        logger.info("digest sent", extra={"userId": job.user_id, "unread": unread})


def _single_email(job: NotificationJob) -> tuple[str, str]:
    if job.kind == "message":
        sender = job.data.get("senderId", "someone")
        return (
            f"New message from {sender}",
            f"{sender}: {str(job.data.get('preview', ''))[:500]}\n\nOpen Switchboard to reply.",
        )
    if job.kind == "missed_call":
        caller = job.data.get("callerId", "someone")
        media = "video" if job.data.get("media") == "video" else "voice"
        return (
            f"Missed {media} call from {caller}",
            f"{caller} called you.\n\nOpen Switchboard to call back.",
        )
    return (f"Switchboard: {job.kind.replace('_', ' ')}", json.dumps(job.data, indent=2))
