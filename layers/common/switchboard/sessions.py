"""Token lifetime of a connection: ``auth:refresh`` extends it, ``admin:revoke`` ends a
user's sessions.

API Gateway fixes the authorizer's context (with the token's expiry) for the life of a
connection. A refresh stores the new token's expiry on the connection item; the router
reads it only once the first expiry has passed (``WebSocketRouter(refreshed_token_exp=)``),
so a connection with a valid token pays nothing for this. Revocation stamps the user with
``tokensValidAfter`` (the authorizer and refresh refuse older tokens) and closes every
live connection of the user through the management API (DELETE @connections/{id}).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from switchboard.errors import Forbidden, NotFound, Unauthorized
from switchboard.observability import logger
from switchboard.router import Caller
from switchboard.wire.sessions import SessionsRevoked, TokenRefreshed

if TYPE_CHECKING:
    from switchboard.auth import TokenVerifier
    from switchboard.dal.connections import ConnectionRepository
    from switchboard.dal.users import UserRepository
    from switchboard.gateway import ManagementApi


class SessionService:
    def __init__(
        self,
        connections: ConnectionRepository,
        users: UserRepository,
        verifier: Callable[[], TokenVerifier],
        gateway: ManagementApi,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # ``verifier`` is a factory: PyJWT and the secret are loaded on the first refresh,
        # not on the $connect cold path this function also serves.
        self.connections = connections
        self.users = users
        self._verifier = verifier
        self.gateway = gateway
        self._clock = clock

    def refresh(self, caller: Caller, token: str) -> TokenRefreshed:
        from switchboard.auth import InvalidToken

        try:
            identity = self._verifier().verify(token)
        except InvalidToken as exc:
            logger.info("refresh refused", extra={"reason": exc.reason})
            raise Unauthorized("the token is not valid") from None
        if identity.user_id != caller.user_id:
            raise Forbidden("the token belongs to another user")
        if identity.roles != caller.roles:
            # Roles are fixed when the connection opens (the authorizer's context): a
            # token with other roles, e.g. after a demotion, needs a new connection.
            raise Unauthorized("the token's roles differ from the connection's: reconnect")
        if identity.issued_at < self.users.tokens_valid_after(caller.user_id):
            raise Unauthorized("the token has been revoked")
        if not self.connections.refresh_token(
            caller.connection_id, caller.user_id, identity.expires_at
        ):
            raise NotFound("the connection is gone")
        return TokenRefreshed(expiresAt=identity.expires_at)

    def revoke(self, caller: Caller, user_id: str) -> SessionsRevoked:
        if not caller.is_admin:
            raise Forbidden("only an admin may revoke a user's sessions")
        # Whole seconds, rounded up: a token minted in this same second is revoked too.
        # From here on no connect with an older token can be stored (the $connect write
        # is conditioned on this stamp), so the ids read next are all there is to close.
        self.users.revoke_tokens(user_id, int(self._clock()) + 1)
        result = self.gateway.close_all(self.users.connection_ids(user_id))
        logger.info(
            "sessions revoked",
            extra={"userId": user_id, "closed": len(result.delivered), "failed": result.failed},
        )
        return SessionsRevoked(
            userId=user_id,
            closedConnections=len(result.delivered),
            alreadyClosed=len(result.gone),
            failedConnections=sorted(result.failed),
        )
