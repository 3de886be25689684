"""Session actions: token refresh and (admins) revocation of a user's sessions."""

from __future__ import annotations

from pydantic import Field

from switchboard.protocol import WireModel
from switchboard.wire.messaging import UserId


class AuthRefresh(WireModel):
    token: str = Field(min_length=1, max_length=8192)


class AdminRevoke(WireModel):
    userId: UserId


ACTIONS: dict[str, type[WireModel]] = {
    "auth:refresh": AuthRefresh,
    "admin:revoke": AdminRevoke,
}
