"""Notification preferences, and the double opt-in that keeps them from making the
service a mail relay: ``preferences:set`` accepts any address, but nothing but one
verification mail (a 6-digit code) goes there until ``preferences:verify-email`` proves
the address is the caller's. Verification mails are capped per user and per address
(so neither one account nor many can flood a stranger with them; the address cap counts
requesters, so the address's pending owner may ask again), counted in the same
transaction as the preferences write: a refused set stores nothing and mails nothing.
The mail itself is sent by the notification function (notifier.py: it holds the SES
rights)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from switchboard.dal.ratelimits import RateLimit, RateLimiter
from switchboard.dal.users import EmailCheck, Preferences, UserRepository
from switchboard.errors import BadRequest, RateLimited
from switchboard.observability import logger
from switchboard.queues import VERIFY_EMAIL, NotificationJob, NotificationQueue
from switchboard.router import Caller
from switchboard.wire import messaging as wire

DAY_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class VerificationLimits:
    code_ttl_seconds: int = 3600
    max_attempts: int = 5  # wrong codes before the code is void (set the address again)
    mails_per_user_per_day: int = 5
    mails_per_address_per_day: int = 3


def code_hash(user_id: str, email: str, code: str) -> str:
    return hashlib.sha256(f"{user_id}\n{email}\n{code}".encode()).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


class PreferencesService:
    def __init__(
        self,
        users: UserRepository,
        counters: RateLimiter,
        queue: NotificationQueue,
        *,
        limits: VerificationLimits = VerificationLimits(),
        clock: Callable[[], float] = time.time,
        make_code: Callable[[], str] = new_code,
    ) -> None:
        self.users = users
        self.counters = counters
        self.queue = queue
        self.limits = limits
        self._clock = clock
        self._make_code = make_code

    def get(self, caller: Caller) -> wire.PreferencesView:
        return _view(self.users.preferences(caller.user_id))

    def set(self, caller: Caller, data: wire.PreferencesSet) -> wire.PreferencesView:
        current = self.users.preferences(caller.user_id)
        updated = replace(
            current,
            email_on_offline=current.email_on_offline
            if data.emailOnOffline is None
            else data.emailOnOffline,
            digest_minutes=current.digest_minutes
            if data.digestMinutes is None
            else data.digestMinutes,
            accept_requests=current.accept_requests
            if data.acceptRequests is None
            else data.acceptRequests,
        )
        if updated.email_on_offline and not (data.email or updated.email):
            raise BadRequest("emailOnOffline needs an email address")
        # A new address (or the same one, still unverified: a new code) starts over.
        if data.email is None or (data.email == current.email and current.email_verified):
            self.users.set_preferences(caller.user_id, updated)
            return _view(updated)
        updated = replace(updated, email=data.email, email_verified=False, unsubscribe_token=None)
        now_ms = int(self._clock() * 1000)
        code = self._make_code()
        check = EmailCheck(
            email=data.email,
            code_hash=code_hash(caller.user_id, data.email, code),
            expires_at=now_ms + self.limits.code_ttl_seconds * 1000,
        )
        address = hashlib.sha256(data.email.lower().encode()).hexdigest()[:32]
        rules = [
            RateLimit(
                f"verify#user#{caller.user_id}", self.limits.mails_per_user_per_day, DAY_SECONDS
            )
        ]
        # The per-address cap counts requesters, not requests: one who is already waiting
        # for a code to this address (its owner asking again) is bounded by the per-user
        # cap alone, so strangers asking for codes to it cannot lock its owner out.
        if not (current.email == data.email and not current.email_verified):
            rules.append(
                RateLimit(
                    f"verify#to#{address}", self.limits.mails_per_address_per_day, DAY_SECONDS
                )
            )
        guards = [self.counters.update(rule, now_ms) for rule in rules]
        refused = self.users.set_preferences(caller.user_id, updated, check, guards)
        if refused is not None:
            rule = rules[refused]
            scope = "address" if rule.key.startswith("verify#to#") else "user"
            raise RateLimited(
                f"too many verification mails today (per {scope}): try again tomorrow",
                details={"retryAfterMs": rule.retry_after_ms(now_ms), "scope": scope},
            )
        self.queue.enqueue(
            [
                NotificationJob(
                    kind=VERIFY_EMAIL,
                    user_id=caller.user_id,
                    created_at=now_ms,
                    source=f"verify#{now_ms}",
                    data={"email": data.email, "code": code},
                )
            ]
        )
        logger.info("email verification started", extra={"userId": caller.user_id})
        return _view(updated)

    def verify_email(
        self, caller: Caller, data: wire.PreferencesVerifyEmail
    ) -> wire.PreferencesView:
        current = self.users.preferences(caller.user_id)
        if current.email is None:
            raise BadRequest("no e-mail address to verify: set one first")
        if current.email_verified:
            return _view(current)
        confirmed = self.users.confirm_email(
            caller.user_id,
            code_hash(caller.user_id, current.email, data.code),
            int(self._clock() * 1000),
            self.limits.max_attempts,
            secrets.token_urlsafe(24),
        )
        if not confirmed:
            raise BadRequest(
                "wrong or expired code",
                details=[{"field": "data.code", "message": "does not match the code mailed"}],
            )
        logger.info("email verified", extra={"userId": caller.user_id})
        return _view(self.users.preferences(caller.user_id))


def _view(prefs: Preferences) -> wire.PreferencesView:
    return wire.PreferencesView(
        emailOnOffline=prefs.email_on_offline,
        email=prefs.email,
        emailVerified=prefs.email_verified,
        digestMinutes=prefs.digest_minutes,
        acceptRequests=prefs.accept_requests,
    )
