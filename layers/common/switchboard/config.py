"""Settings: one pydantic model per function, read from the environment once, at cold start.

Fields are the UPPER_CASE environment variable names the template sets. Resource names
have no defaults: a function deployed without them fails at cold start, not at the
first request that happens to need them.
"""

from __future__ import annotations

import os
from typing import Self

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls) -> Self:
        return cls.model_validate(dict(os.environ))


class ConnectionSettings(Settings):
    CONNECTIONS_TABLE: str
    USERS_TABLE: str
    # API Gateway closes a connection after 2 h at most; the item outlives it a little so a
    # missed $disconnect (it is best effort) cannot leave a ghost connection forever.
    CONNECTION_TTL_SECONDS: int = 7800
    # Connection-flood limit: a user's live connections (devices, tabs) at once.
    MAX_CONNECTIONS_PER_USER: int = 10


class DeliverySettings(ConnectionSettings):
    """What every function that pushes to users needs."""

    WEBSOCKET_ENDPOINT: str
    DELIVERY_QUEUE_URL: str
    NOTIFICATION_QUEUE_URL: str
    FANOUT_CONCURRENCY: int = 32


class MessagingSettings(DeliverySettings):
    CONVERSATIONS_TABLE: str
    MESSAGES_TABLE: str
    NOTIFICATIONS_TABLE: str
    RATE_LIMITS_TABLE: str
    MAX_BODY_CHARS: int = 4000
    MAX_MEMBERS: int = 50
    RATE_WINDOW_SECONDS: int = 10
    SEND_LIMIT_PER_USER: int = 100
    SEND_LIMIT_PER_CONNECTION: int = 50
    CREATE_LIMIT_PER_USER: int = 10


class NotificationSettings(MessagingSettings):
    EMAIL_SENDER: str


class AuthSettings(Settings):
    """The JWT rules (the authorizer, ``auth:refresh`` and the analytics API share them)."""

    JWT_ALGORITHMS: str = "HS256"
    JWT_SECRET_ARN: str = ""
    JWT_JWKS_URL: str = ""
    JWT_ISSUER: str = ""
    JWT_AUDIENCE: str = ""
    JWT_LEEWAY_SECONDS: int = 30
    JWT_SECRET_MAX_AGE_SECONDS: int = 300

    @property
    def algorithms(self) -> list[str]:
        return [a.strip() for a in self.JWT_ALGORITHMS.split(",") if a.strip()]


class SessionSettings(ConnectionSettings, AuthSettings):
    """The connect function: $connect/$disconnect, ping, ``auth:refresh``, ``admin:revoke``."""

    WEBSOCKET_ENDPOINT: str


class AuthorizerSettings(AuthSettings):
    USERS_TABLE: str  # revocation: tokens issued before a user's tokensValidAfter are refused

