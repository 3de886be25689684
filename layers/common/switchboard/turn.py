"""STUN/TURN servers for ``call:ice-servers``, with ephemeral TURN credentials in the TURN
REST API scheme that coturn implements (``use-auth-secret`` + ``static-auth-secret``):

    username   = "<expiry epoch seconds>:<userId>"
    credential = base64(HMAC-SHA1(secret, username))

The TURN server recomputes the credential from the username with the shared secret and
refuses it after the expiry, so nothing is stored and a leaked credential dies by itself.
The secret lives in Secrets Manager, read through Powertools Parameters and cached.

A relay is bandwidth anyone could use as a proxy, so credentials are tied to calls:
``call:ice-servers`` hands them to a participant of a ringing or active call (``callId``)
or to a caller about to place one (``calleeId``, someone in her recent conversations,
counted: ``issues_per_minute``), and to nobody else (STUN only). coturn checks a
credential when an allocation is made, not while it lives (refreshes of an allocation
keep working past the expiry), so the lifetime only has to cover the time from the
request to the allocation: a short TTL (2 minutes by default) is what revocation relies
on. ``admin:revoke`` closes the user's connections, so no new credential can be asked
for, and those already issued expire within the TTL; an allocation made before the
revocation lives until its peer connection closes (the revocation's closed connections
end the user's calls).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from switchboard.errors import RateLimited

if TYPE_CHECKING:
    from switchboard.dal.ratelimits import RateLimiter
    from switchboard.wire.calls import IceServers as IceServersReply


def turn_credentials(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def split_urls(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()]


def secrets_manager_secret(secret_arn: str, max_age_seconds: int) -> Callable[[], str]:
    def provide() -> str:
        # Imported on first use: the Parameters utility costs ~0.2 s of import, paid only
        # by call:ice-servers, and its cache spares Secrets Manager a call per request.
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(secret_arn, max_age=max_age_seconds)
        if not isinstance(value, str) or not value:
            raise TypeError("the TURN secret must be a non-empty string")
        return value

    return provide


class IceServers:
    def __init__(
        self,
        *,
        stun_urls: list[str],
        turn_urls: list[str],
        ttl_seconds: int,
        secret: Callable[[], str],
        counters: RateLimiter | None = None,
        issues_per_minute: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stun = stun_urls
        self._turn = turn_urls
        self._ttl = ttl_seconds
        self._secret = secret
        self._counters = counters
        self._issues_per_minute = issues_per_minute
        self._clock = clock

    def count_issue(self, user_id: str) -> None:
        """Counts credentials issued before a call exists (RateLimited past the limit)."""
        if self._counters is None or not self._turn:
            return
        from switchboard.dal.ratelimits import RateLimit

        rule = RateLimit(f"turn#user#{user_id}", self._issues_per_minute, 60)
        now_ms = int(self._clock() * 1000)
        if not self._counters.consume(rule, now_ms):
            raise RateLimited(
                f"rate limit reached: at most {rule.limit} TURN credentials a minute",
                details={"retryAfterMs": rule.retry_after_ms(now_ms)},
            )

    def stun_only(self) -> IceServersReply:
        """STUN only: no call, no relay."""
        from switchboard.wire.calls import IceServer, IceServers

        servers = [IceServer(urls=list(self._stun))] if self._stun else []
        return IceServers(iceServers=servers, ttl=self._ttl, expiresAt=int(self._clock()))

    def for_user(self, user_id: str) -> IceServersReply:
        """``RTCConfiguration.iceServers`` for the user (pass it to RTCPeerConnection)."""
        from switchboard.wire.calls import IceServer, IceServers

        expires_at = int(self._clock()) + self._ttl
        servers: list[IceServer] = []
        if self._stun:
            servers.append(IceServer(urls=list(self._stun)))
        if self._turn:
            username, credential = turn_credentials(self._secret(), user_id, expires_at)
            servers.append(
                IceServer(urls=list(self._turn), username=username, credential=credential)
            )
        return IceServers(iceServers=servers, ttl=self._ttl, expiresAt=expires_at)
