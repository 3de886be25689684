"""Settings: one pydantic model per function, read from the environment once, at cold start.

Fields are the UPPER_CASE environment variable names the template sets. Resource names
have no defaults: a function deployed without them fails at cold start, not at the
first request that happens to need them.
"""

# No `from __future__ import annotations` here: pydantic would evaluate every field's
# annotation from its string when the module is imported (a compile() per field),
# which is a measurable part of a function's cold start (docs/performance.md, 1).

import os
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from switchboard import limits


class Settings(BaseModel):
    # Built when a function reads its own settings (``from_env``, at cold start), not when
    # this module defines every function's: one function's import builds one model.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

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


class DeliveryRetrySettings(DeliverySettings):
    # A retried message:new is read again before it is posted (message_ops.fresh_retry):
    # an edit or a delete made while it waited in the queue is what arrives.
    CONVERSATIONS_TABLE: str
    MESSAGES_TABLE: str


class MessagingSettings(DeliverySettings):
    CONVERSATIONS_TABLE: str
    MESSAGES_TABLE: str
    NOTIFICATIONS_TABLE: str
    RATE_LIMITS_TABLE: str
    UPLOADS_TABLE: str  # attachments: a message may attach the sender's completed uploads
    # A send is one transaction of 3 items (5 for a thread reply: its parent and the
    # change-log item), one per member (their activityAt), 2 rate limits and up to 10
    # attachments, and DynamoDB allows 100 items per transaction.
    MAX_MEMBERS: Annotated[int, Field(ge=2, le=83)] = 50
    RATE_WINDOW_SECONDS: int = 10
    SEND_LIMIT_PER_USER: int = 100
    SEND_LIMIT_PER_CONNECTION: int = 50
    CREATE_LIMIT_PER_USER: int = 10
    # Edits, deletes and reactions (message_ops.py): the edit window, and how many of them
    # one user may make per RATE_WINDOW_SECONDS (each is pushed to every member).
    EDIT_WINDOW_SECONDS: Annotated[int, Field(ge=0)] = limits.EDIT_WINDOW_SECONDS
    MESSAGE_OP_LIMIT_PER_USER: int = 60


class CallSettings(DeliverySettings):
    """What ends, times out or signals calls (signaling, ring timeout, disconnects)."""

    CALLS_TABLE: str
    CONVERSATIONS_TABLE: str
    MESSAGES_TABLE: str
    RING_TIMEOUT_QUEUE_URL: str
    RING_TIMEOUT_SECONDS: int = 30
    MAX_CALL_PARTICIPANTS: int = 4
    CALL_RETENTION_DAYS: int = 30


class SignalingSettings(CallSettings):
    TURN_SECRET_ARN: str
    TURN_URLS: str = ""  # comma-separated turn:/turns: URLs; empty = STUN only
    STUN_URLS: str = ""
    # coturn checks a credential when it allocates, not after: a short lifetime is enough
    # for a call of any length, and is what bounds a revoked user's credentials.
    TURN_CREDENTIAL_TTL_SECONDS: int = 120
    TURN_ISSUES_PER_MINUTE: int = 10  # credentials for calls not placed yet (calleeId)
    # call:initiate and call:invite per user and minute: each rings devices (and queues a
    # ring timeout), so a loop of calls is capped even between contacts.
    CALL_LIMIT_PER_MINUTE: int = 10
    RATE_LIMITS_TABLE: str
    TURN_SECRET_MAX_AGE_SECONDS: int = 300


class NotificationSettings(MessagingSettings):
    EMAIL_SENDER: str
    # One-click unsubscribe endpoint (functions/message/unsubscribe.py) for List-Unsubscribe.
    UNSUBSCRIBE_URL: str
    MAIL_DAILY_LIMIT_PER_USER: int = 20


class UnsubscribeSettings(Settings):
    USERS_TABLE: str


class UploadSettings(DeliverySettings):
    """The upload routes and the S3-event processor (limits in README.md)."""

    UPLOADS_TABLE: str
    UPLOADS_BUCKET: str
    CONVERSATIONS_TABLE: str  # upload:get by a member of a conversation it was attached in
    MESSAGES_TABLE: str
    UPLOAD_ALLOWED_CONTENT_TYPES: str = (
        "image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain,"
        "audio/webm,audio/ogg,video/webm"
    )
    # upload:start of a call recording checks the call (empty: recordings are refused).
    CALLS_TABLE: str = ""
    UPLOAD_MAX_BYTES: int = 100 * 1024 * 1024
    UPLOAD_MULTIPART_THRESHOLD_BYTES: int = 8 * 1024 * 1024
    UPLOAD_PART_BYTES: int = 5 * 1024 * 1024
    # Bounds the part URLs in the start reply (each is ~0.5-1.5 KB; a frame is 32 KB).
    UPLOAD_MAX_PARTS: int = 16
    UPLOAD_URL_TTL_SECONDS: int = 900
    DOWNLOAD_URL_TTL_SECONDS: int = 300
    UPLOAD_TTL_SECONDS: int = 86400
    THUMBNAIL_MAX_PIXELS: int = 256
    # Decompression-bomb budget, checked on the headers before any pixel is decoded:
    # one frame's canvas, and canvas x frames (what decoding every frame would cost).
    IMAGE_MAX_PIXELS: int = 40_000_000
    IMAGE_MAX_TOTAL_PIXELS: int = 100_000_000
    IMAGE_MAX_FRAMES: int = 1000
    IMAGE_MAX_BYTES: int = 20 * 1024 * 1024  # images are read whole by Pillow
    MEDIA_MAX_BYTES: int = 64 * 1024 * 1024  # audio/video containers are read whole too
    VOICE_MAX_SECONDS: int = 300
    RECORDING_MAX_SECONDS: int = 3 * 3600
    # Every upload costs a processor run: upload:start per user per window.
    RATE_LIMITS_TABLE: str
    UPLOAD_START_LIMIT_PER_USER: int = 30
    UPLOAD_START_WINDOW_SECONDS: int = 60
    # A PUT URL lives 60 s + the time the upload takes at this rate (at most the TTL above).
    UPLOAD_MIN_BYTES_PER_SECOND: int = 64 * 1024

    @property
    def allowed_content_types(self) -> frozenset[str]:
        return frozenset(
            t.strip().lower() for t in self.UPLOAD_ALLOWED_CONTENT_TYPES.split(",") if t.strip()
        )


class AuthSettings(Settings):
    """The JWT rules (the authorizer, ``auth:refresh`` and the analytics API share them)."""

    JWT_ALGORITHMS: str = "HS256"
    JWT_SECRET_ARN: str = ""
    JWT_JWKS_URL: str = ""
    JWT_ISSUER: str = ""
    JWT_AUDIENCE: str = ""
    # The claim that lists the user's roles (Cognito puts its groups in "cognito:groups").
    JWT_ROLES_CLAIM: str = "roles"
    JWT_LEEWAY_SECONDS: int = 30
    JWT_SECRET_MAX_AGE_SECONDS: int = 300

    @property
    def algorithms(self) -> list[str]:
        return [a.strip() for a in self.JWT_ALGORITHMS.split(",") if a.strip()]

    @property
    def public_key_mode(self) -> bool:
        return any(not a.startswith("HS") for a in self.algorithms)

    @model_validator(mode="after")
    def _public_keys_need_issuer_and_audience(self) -> Self:
        # An identity provider signs the tokens of every app it serves with the same keys:
        # without both checks, a token minted for another app of the same Cognito pool or
        # Auth0 tenant (admin role included) would open connections here. Refused at cold
        # start, so a function so configured never serves a request.
        if self.public_key_mode and any(a.startswith("HS") for a in self.algorithms):
            # Mixing symmetric and asymmetric algorithms is what makes alg confusion possible.
            raise ValueError("JWT_ALGORITHMS must not mix HMAC and public-key algorithms")
        if self.public_key_mode:
            missing = [
                name
                for name in ("JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE")
                if not getattr(self, name).strip()
            ]
            if missing:
                raise ValueError(f"RS256/ES256 mode needs {', '.join(missing)}")
        return self


class SessionSettings(ConnectionSettings, AuthSettings):
    """The connect function: $connect/$disconnect, ping, ``auth:refresh``, ``admin:revoke``."""

    WEBSOCKET_ENDPOINT: str
    RATE_LIMITS_TABLE: str
    # Connections a user may open a minute, all devices together (ConnectRateLimitPerUser).
    CONNECT_LIMIT_PER_MINUTE: int = 30


class AuthorizerSettings(AuthSettings):
    USERS_TABLE: str  # revocation: tokens issued before a user's tokensValidAfter are refused


class AggregatorSettings(Settings):
    """The analytics stream aggregator: its sources are the tables whose streams it reads."""

    METRICS_TABLE: str
    CONNECTIONS_TABLE: str
    CONVERSATIONS_TABLE: str
    MESSAGES_TABLE: str
    NOTIFICATIONS_TABLE: str
    RATE_LIMITS_TABLE: str
    CALLS_TABLE: str
    UPLOADS_TABLE: str


class AnalyticsApiSettings(AuthorizerSettings):
    """The analytics HTTP API. Queues are every ``<NAME>_QUEUE_URL`` / ``<NAME>_DLQ_URL``
    variable of the function (a queue is added to the report by adding its variable)."""

    METRICS_TABLE: str
    QUEUES: dict[str, dict[str, str]] = {}
    # Where the consumers' EMF queue metrics are (namespace, and the service dimension
    # Powertools adds): /queues reads processing time and failures from there.
    POWERTOOLS_METRICS_NAMESPACE: str = "Switchboard"
    POWERTOOLS_SERVICE_NAME: str = ""

    @property
    def main_queues(self) -> dict[str, str]:
        return {label: urls["queue"] for label, urls in self.QUEUES.items() if "queue" in urls}

    @classmethod
    def from_env(cls) -> Self:
        environ = dict(os.environ)
        queues: dict[str, dict[str, str]] = {}
        for name, value in sorted(environ.items()):
            for suffix, kind in (("_QUEUE_URL", "queue"), ("_DLQ_URL", "dlq")):
                if name.endswith(suffix) and value:
                    words = name.removesuffix(suffix).lower().split("_")
                    label = words[0] + "".join(w.title() for w in words[1:])
                    queues.setdefault(label, {})[kind] = value
        return cls.model_validate({**environ, "QUEUES": queues})


class AdminDashboardSettings(Settings):
    """How operators sign in to the dashboard (switchboard/analytics/dashboard.py): the
    deployment's OpenID Connect provider, authorization code flow with PKCE (a public
    client: no secret in the page). All empty = no provider (the devserver's dev token)."""

    ADMIN_OIDC_AUTHORIZE_URL: str = ""
    ADMIN_OIDC_TOKEN_URL: str = ""
    ADMIN_OIDC_CLIENT_ID: str = ""
    ADMIN_OIDC_SCOPES: str = "openid"
    # Which token of the IdP's answer is the API's bearer token (id_token carries the
    # client id as its audience and, with Cognito, the user's groups).
    ADMIN_OIDC_TOKEN: Literal["id_token", "access_token"] = "id_token"  # noqa: S105 - a name
    ADMIN_OIDC_LOGOUT_URL: str = ""

    @property
    def oidc(self) -> dict[str, str] | None:
        if not (
            self.ADMIN_OIDC_AUTHORIZE_URL
            and self.ADMIN_OIDC_TOKEN_URL
            and self.ADMIN_OIDC_CLIENT_ID
        ):
            return None
        return {
            "authorizeUrl": self.ADMIN_OIDC_AUTHORIZE_URL,
            "tokenUrl": self.ADMIN_OIDC_TOKEN_URL,
            "clientId": self.ADMIN_OIDC_CLIENT_ID,
            "scopes": self.ADMIN_OIDC_SCOPES,
            "token": self.ADMIN_OIDC_TOKEN,
            "logoutUrl": self.ADMIN_OIDC_LOGOUT_URL,
        }


class SearchSettings(ConnectionSettings):
    """``message:search`` and the indexer that feeds it from the Messages stream."""

    CONVERSATIONS_TABLE: str
    MESSAGES_TABLE: str
    SEARCH_INDEX_TABLE: str
    RATE_LIMITS_TABLE: str
    RATE_WINDOW_SECONDS: int = 10
    SEARCH_LIMIT_PER_USER: int = 60
    SEARCH_MAX_WORDS: Annotated[int, Field(ge=1, le=16)] = 8
    # A search's cost: at most this many one-page Queries of this many documents each
    # (DynamoDB also stops a page at 1 MB); the cursor reads on (docs/search.md).
    SEARCH_DOCUMENTS_PER_READ: Annotated[int, Field(ge=1, le=1000)] = 500
    SEARCH_READS_PER_SEARCH: Annotated[int, Field(ge=1, le=10)] = 4
    # The size of one indexed message's document (docs/search.md).
    SEARCH_MAX_TERMS_PER_MESSAGE: Annotated[int, Field(ge=1, le=1000)] = 64
