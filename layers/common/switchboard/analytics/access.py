"""Who may read analytics: a token valid under the WebSocket authorizer's JWT rules (same
verifier, same revocation check) that carries the ``admin`` role."""

from __future__ import annotations

from switchboard.auth import ConnectAuthorizer, Identity, InvalidToken
from switchboard.observability import logger

ADMIN_ROLE = "admin"


class NotAuthenticated(Exception):
    """No token, or one the authorizer would refuse (401)."""


class NotAdmin(Exception):
    """A valid token without the admin role (403)."""


class AdminAccess:
    def __init__(self, authorizer: ConnectAuthorizer) -> None:
        self._authorizer = authorizer

    def check(self, token: str | None) -> Identity:
        if not token:
            raise NotAuthenticated("a bearer token is required")
        try:
            identity = self._authorizer.verify(token)
        except InvalidToken as exc:
            logger.info("analytics token refused", extra={"reason": exc.reason})
            raise NotAuthenticated("invalid or expired token") from None
        if ADMIN_ROLE not in identity.roles:
            raise NotAdmin("the admin role is required")
        return identity
