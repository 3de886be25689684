"""STUN/TURN servers for ``call:ice-servers``, with ephemeral TURN credentials in the TURN
REST API scheme that coturn implements (``use-auth-secret`` + ``static-auth-secret``):

    username   = "<expiry epoch seconds>:<userId>"
    credential = base64(HMAC-SHA1(secret, username))

The TURN server recomputes the credential from the username with the shared secret and
refuses it after the expiry, so nothing is stored and a leaked credential dies by itself.
The secret lives in Secrets Manager, read through Powertools Parameters and cached.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stun = stun_urls
        self._turn = turn_urls
        self._ttl = ttl_seconds
        self._secret = secret
        self._clock = clock

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
