"""Session actions: token refresh and (admins) revocation of a user's sessions."""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

from pydantic import Field

from switchboard import limits
from switchboard.protocol import PushData, WireData, WireModel
from switchboard.wire.ids import UserId


class AuthRefresh(WireModel):
    token: str = Field(min_length=1, max_length=limits.MAX_TOKEN_CHARS)


class AdminRevoke(WireModel):
    userId: UserId


class Pong(WireData):
    pong: bool
    serverTime: int = Field(description="epoch ms on the server")
    pid: int = Field(description="which execution environment answered (diagnostics)")
    connectionId: str = Field(
        description="the caller's own connection, as API Gateway's management API and the "
        "operators' logs name it"
    )


class KeepalivePong(PushData):
    """API Gateway's own answer to ``{"action": "keepalive"}`` (a MOCK integration in
    template.yaml: no Lambda runs). It names no request: any frame after a keepalive
    proves the link."""

    TYPE = "pong"
    serverTime: int = Field(description="epoch ms at which API Gateway received the keepalive")
    connectionId: str = Field(description="the caller's own connection")


class TokenRefreshed(WireData):
    expiresAt: int = Field(description="the new token's expiry, epoch seconds")


class SessionsRevoked(WireData):
    userId: str
    closedConnections: int
    alreadyClosed: int
    failedConnections: list[str]


ACTIONS: dict[str, type[WireModel]] = {
    "auth:refresh": AuthRefresh,
    "admin:revoke": AdminRevoke,
}
REPLIES: dict[str, type[WireData]] = {
    "ping": Pong,
    "auth:refresh": TokenRefreshed,
    "admin:revoke": SessionsRevoked,
}
PUSHES: tuple[type[PushData], ...] = (KeepalivePong,)
