"""JWT verification for the $connect authorizer (PyJWT).

Two modes, chosen by configuration, never by the token:
- HS256 with a signing secret kept in Secrets Manager (read through Powertools
  Parameters, cached for JWT_SECRET_MAX_AGE_SECONDS);
- RS256/ES256 against an identity provider's JWKS URL (Cognito, Auth0, ...), where the
  issuer and the audience are required (settings refuse to start without them) and a
  Cognito token must be an ID token (``token_use``: an access token has no ``aud``).
The accepted algorithms come from configuration, so ``alg: none`` and HS/RS confusion
(an RS public key used as an HMAC secret) are refused by PyJWT before any key is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from switchboard.config import AuthSettings

if TYPE_CHECKING:
    from jwt import PyJWKClient

    from switchboard.dal.users import UserRepository

REQUIRED_CLAIMS = ["sub", "exp", "iat"]
_HMAC = {"HS256", "HS384", "HS512"}


class InvalidToken(Exception):
    """The token must not open a connection. ``reason`` is for logs, never for clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    roles: frozenset[str]
    expires_at: int
    issued_at: int = 0


class TokenVerifier:
    def __init__(
        self,
        settings: AuthSettings,
        *,
        secret_provider: Callable[[], str] | None = None,
        jwks_client: PyJWKClient | None = None,
    ) -> None:
        algorithms = settings.algorithms
        if not algorithms:
            raise ValueError("JWT_ALGORITHMS is empty")
        if {a for a in algorithms if a in _HMAC} and {a for a in algorithms if a not in _HMAC}:
            # Mixing symmetric and asymmetric algorithms is what makes alg confusion possible.
            raise ValueError("JWT_ALGORITHMS must not mix HMAC and public-key algorithms")
        self._settings = settings
        self._algorithms = algorithms
        self._symmetric = algorithms[0] in _HMAC
        if self._symmetric and secret_provider is None:
            if not settings.JWT_SECRET_ARN:
                raise ValueError("JWT_SECRET_ARN is required for HS256")
            secret_provider = _secrets_manager_provider(
                settings.JWT_SECRET_ARN, settings.JWT_SECRET_MAX_AGE_SECONDS
            )
        if not self._symmetric and jwks_client is None:
            if not settings.JWT_JWKS_URL:
                raise ValueError("JWT_JWKS_URL is required for RS256/ES256")
            jwks_client = jwt.PyJWKClient(settings.JWT_JWKS_URL, cache_keys=True, lifespan=300)
        self._secret_provider = secret_provider
        self._jwks_client = jwks_client

    def verify(self, token: str | None) -> Identity:
        if not token:
            raise InvalidToken("missing token")
        if len(token) > 8192:
            raise InvalidToken("token too long")
        try:
            key: Any = self._key_for(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._settings.JWT_AUDIENCE or None,
                issuer=self._settings.JWT_ISSUER or None,
                leeway=self._settings.JWT_LEEWAY_SECONDS,
                options={
                    "require": REQUIRED_CLAIMS,
                    "verify_aud": bool(self._settings.JWT_AUDIENCE),
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
        if claims.get("token_use", "id") != "id":
            # Cognito marks its tokens: only an ID token is a login for this app (an access
            # token is for calling APIs on the user's behalf, and carries no audience).
            raise InvalidToken("token_use must be 'id'")
        return _identity(claims, self._settings.JWT_ROLES_CLAIM)

    def _key_for(self, token: str) -> Any:
        if self._symmetric:
            assert self._secret_provider is not None
            return self._secret_provider()
        assert self._jwks_client is not None
        return self._jwks_client.get_signing_key_from_jwt(token).key


class ConnectAuthorizer:
    """The rules of $connect (and of the analytics API, which accepts the same tokens): a
    token the verifier accepts, not issued before the user's sessions were revoked
    (``admin:revoke`` stamps ``tokensValidAfter``)."""

    def __init__(self, verifier: TokenVerifier, users: UserRepository) -> None:
        self.verifier = verifier
        self.users = users

    def verify(self, token: str | None) -> Identity:
        identity = self.verifier.verify(token)
        if identity.issued_at < self.users.tokens_valid_after(identity.user_id):
            raise InvalidToken("token issued before the user's sessions were revoked")
        return identity


def _identity(claims: dict[str, Any], roles_claim: str = "roles") -> Identity:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 128 or "," in sub:
        raise InvalidToken("sub must be a non-empty string of at most 128 characters")
    roles = claims.get(roles_claim, [])
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("roles must be a list of strings")
    return Identity(
        user_id=sub,
        roles=frozenset(r for r in roles if r and "," not in r),
        expires_at=int(claims["exp"]),
        issued_at=int(claims.get("iat") or 0),
    )


def _secrets_manager_provider(secret_arn: str, max_age: int) -> Callable[[], str]:
    def provide() -> str:
        # Imported here: the Parameters utility costs ~0.2 s of import, paid only by the
        # authorizer, and its cache spares Secrets Manager a call per connection.
        from aws_lambda_powertools.utilities import parameters

        value = parameters.get_secret(secret_arn, max_age=max_age)
        if not isinstance(value, str):
            raise TypeError("the JWT signing secret must be a string")
        return value

    return provide


def mint_token(
    secret: str,
    user_id: str,
    roles: Iterable[str] = (),
    *,
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 token as the HS256 mode verifies it (dev tokens, tests, trusted backends)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "roles": list(roles),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
