"""Who may read analytics: a token valid under the WebSocket authorizer's JWT rules (same
verifier, same revocation check) that carries the ``admin`` role."""

from __future__ import annotations

from switchboard.auth import Identity, InvalidToken, TokenVerifier
from switchboard.config import AnalyticsApiSettings
from switchboard.dal.users import UserRepository
from switchboard.observability import logger

ADMIN_ROLE = "admin"


class NotAuthenticated(Exception):
    """No token, or one the authorizer would refuse (401)."""


class NotAdmin(Exception):
    """A valid token without the admin role (403)."""


class AdminAccess:
    def __init__(
        self,
        settings: AnalyticsApiSettings,
        *,
        verifier: TokenVerifier | None = None,
        users: UserRepository | None = None,
    ) -> None:
        self._verifier = verifier or TokenVerifier(settings)
        self._users = users or UserRepository(settings.USERS_TABLE)

    def check(self, token: str | None) -> Identity:
        if not token:
            raise NotAuthenticated("a bearer token is required")
        try:
            identity = self._verifier.verify(token)
            revoked = identity.issued_at < self._users.tokens_valid_after(identity.user_id)
        except InvalidToken as exc:
            logger.info("analytics token refused", extra={"reason": exc.reason})
            raise NotAuthenticated("invalid or expired token") from None
        if revoked:
            logger.info("analytics token refused", extra={"reason": "revoked"})
            raise NotAuthenticated("invalid or expired token")
        if ADMIN_ROLE not in identity.roles:
            raise NotAdmin("the admin role is required")
        return identity
