"""The JWT rules of the $connect authorizer: every attack is refused, valid tokens pass."""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from switchboard.auth import InvalidToken, TokenVerifier, mint_token
from switchboard.config import AuthorizerSettings, AuthSettings

SECRET = "s" * 48
OTHER_SECRET = "o" * 48


def hs_verifier(**overrides: Any) -> TokenVerifier:
    settings = AuthSettings(JWT_ALGORITHMS="HS256", JWT_SECRET_ARN="arn:test", **overrides)
    return TokenVerifier(settings, secret_provider=lambda: SECRET)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# ---------------------------------------------------------------- HS256


def test_valid_hs256_token_gives_user_roles_and_expiry() -> None:
    # Given a token minted with the signing secret
    token = mint_token(SECRET, "alice", ["admin"], ttl_seconds=600)
    # When it is verified
    identity = hs_verifier().verify(token)
    # Then the identity carries sub, roles and exp
    assert identity.user_id == "alice"
    assert identity.roles == frozenset({"admin"})
    assert identity.expires_at == pytest.approx(time.time() + 600, abs=5)


@pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c", "x" * 9000, "...."])
def test_missing_or_malformed_token_is_refused(token: str | None) -> None:
    with pytest.raises(InvalidToken):
        hs_verifier().verify(token)


def test_expired_token_is_refused() -> None:
    token = mint_token(SECRET, "alice", now=time.time() - 7200, ttl_seconds=3600)
    with pytest.raises(InvalidToken, match="Expired"):
        hs_verifier().verify(token)


def test_not_yet_valid_token_is_refused() -> None:
    token = mint_token(SECRET, "alice", now=time.time() + 3600)
    with pytest.raises(InvalidToken, match="Immature"):
        hs_verifier().verify(token)


def test_token_signed_with_another_key_is_refused() -> None:
    with pytest.raises(InvalidToken, match="Signature"):
        hs_verifier().verify(mint_token(OTHER_SECRET, "alice"))


def test_tampered_payload_is_refused() -> None:
    header, payload, signature = mint_token(SECRET, "alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "mallory"
    claims["roles"] = ["admin"]
    with pytest.raises(InvalidToken):
        hs_verifier().verify(f"{header}.{b64(claims)}.{signature}")


def test_alg_none_is_refused() -> None:
    now = int(time.time())
    claims = {"sub": "mallory", "iat": now, "exp": now + 600, "roles": ["admin"]}
    for alg in ("none", "None", "NONE"):
        token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."
        with pytest.raises(InvalidToken):
            hs_verifier().verify(token)


@pytest.mark.parametrize("missing", ["sub", "exp", "iat"])
def test_required_claims(missing: str) -> None:
    now = int(time.time())
    claims = {"sub": "alice", "iat": now, "exp": now + 600}
    del claims[missing]
    with pytest.raises(InvalidToken):
        hs_verifier().verify(jwt.encode(claims, SECRET, algorithm="HS256"))


@pytest.mark.parametrize("sub", ["", "a" * 129, 42, "a,b"])
def test_bad_subject_is_refused(sub: Any) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": sub, "iat": now, "exp": now + 60}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        hs_verifier().verify(token)


def test_roles_must_be_strings() -> None:
    now = int(time.time())
    token = jwt.encode(
        {"sub": "a", "iat": now, "exp": now + 60, "roles": [{"x": 1}]}, SECRET, algorithm="HS256"
    )
    with pytest.raises(InvalidToken):
        hs_verifier().verify(token)


def test_issuer_and_audience_are_checked_when_configured() -> None:
    verifier = hs_verifier(JWT_ISSUER="https://id.example", JWT_AUDIENCE="switchboard")
    good = mint_token(SECRET, "alice", issuer="https://id.example", audience="switchboard")
    assert verifier.verify(good).user_id == "alice"
    for bad in (
        mint_token(SECRET, "alice", issuer="https://evil.example", audience="switchboard"),
        mint_token(SECRET, "alice", issuer="https://id.example", audience="other"),
        mint_token(SECRET, "alice"),
    ):
        with pytest.raises(InvalidToken):
            verifier.verify(bad)


def test_mixing_hmac_and_public_key_algorithms_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="mix"):
        TokenVerifier(
            AuthSettings(JWT_ALGORITHMS="HS256,RS256", JWT_SECRET_ARN="x"),
            secret_provider=lambda: SECRET,
        )


def test_hs256_needs_a_secret_and_jwks_mode_needs_a_url() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET_ARN"):
        TokenVerifier(AuthSettings(JWT_ALGORITHMS="HS256"))
    with pytest.raises(ValueError, match="JWT_JWKS_URL"):
        TokenVerifier(AuthSettings(JWT_ALGORITHMS="RS256"))


# ---------------------------------------------------------------- RS256 / ES256 via JWKS

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    data: dict[str, Any] = json.loads(algo.to_jwk(key.public_key()))
    data.update(kid=kid, alg=alg, use="sig")
    return data


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """A real JWKS endpoint on 127.0.0.1, as Cognito/Auth0 serve one."""
    body = json.dumps(
        {"keys": [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()


def jwks_verifier(url: str, algorithms: str = "RS256,ES256") -> TokenVerifier:
    return TokenVerifier(
        AuthSettings(
            JWT_ALGORITHMS=algorithms,
            JWT_JWKS_URL=url,
            JWT_ISSUER="https://idp.example",
            JWT_AUDIENCE="switchboard",
        )
    )


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "bob",
        "iat": now,
        "exp": now + 600,
        "iss": "https://idp.example",
        "aud": "switchboard",
        **extra,
    }


def test_rs256_and_es256_tokens_verify_against_jwks(jwks_url: str) -> None:
    verifier = jwks_verifier(jwks_url)
    rs = jwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(_claims(), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    assert verifier.verify(rs).user_id == "bob"
    assert verifier.verify(es).user_id == "bob"


def test_hs_rs_confusion_is_refused(jwks_url: str) -> None:
    # Given an attacker who signs HS256 with the (public) RSA key as the HMAC secret
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = _hmac_token(public_pem, _claims(roles=["admin"]), kid="rsa-1")
    # Then the RS256 verifier refuses it
    with pytest.raises(InvalidToken):
        jwks_verifier(jwks_url).verify(forged)


def _hmac_token(key: bytes, claims: dict[str, Any], kid: str) -> str:
    # PyJWT itself refuses PEM keys as HMAC secrets, so forge the token by hand.
    import hashlib
    import hmac

    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def test_jwks_token_with_unknown_kid_or_foreign_key_is_refused(jwks_url: str) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = jwks_verifier(jwks_url)
    for token in (
        jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": "rsa-1"}),
        jwt.encode(_claims(), stranger, algorithm="RS256", headers={"kid": "nope"}),
        jwt.encode(
            _claims(iss="https://evil"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"}
        ),
        jwt.encode(_claims(aud="other"), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"}),
    ):
        with pytest.raises(InvalidToken):
            verifier.verify(token)


@pytest.mark.parametrize("missing", ["JWT_ISSUER", "JWT_AUDIENCE"])
@pytest.mark.parametrize("algorithms", ["RS256", "ES256", "RS256,ES256"])
def test_public_key_mode_refuses_to_start_without_issuer_and_audience(
    monkeypatch: pytest.MonkeyPatch, missing: str, algorithms: str
) -> None:
    # Given a JWKS configuration with the issuer or the audience left empty
    env = {
        "JWT_ALGORITHMS": algorithms,
        "JWT_JWKS_URL": "https://idp.example/.well-known/jwks.json",
        "JWT_ISSUER": "https://idp.example",
        "JWT_AUDIENCE": "switchboard",
        "USERS_TABLE": "users",
        missing: "",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # When a function reads its settings (at cold start) - Then it refuses to start
    with pytest.raises(ValueError, match=missing):
        AuthorizerSettings.from_env()
    # ... and so does the authorizer's handler module itself
    sys.modules.pop("functions.connect.authorizer", None)
    with pytest.raises(ValueError, match=missing):
        importlib.import_module("functions.connect.authorizer")
    # While HS256 (the service's own secret) keeps both optional
    assert AuthSettings(JWT_ALGORITHMS="HS256", JWT_SECRET_ARN="arn:x").JWT_ISSUER == ""


def test_a_cognito_access_token_is_not_a_login(jwks_url: str) -> None:
    # Given tokens of the right pool and app client, marked by Cognito as ID or access
    verifier = jwks_verifier(jwks_url)
    sign = {"key": RSA_KEY, "algorithm": "RS256", "headers": {"kid": "rsa-1"}}
    assert verifier.verify(jwt.encode(_claims(token_use="id"), **sign)).user_id == "bob"
    # Then an access token (or any other use) is refused, even with a matching aud
    for use in ("access", "refresh", ""):
        with pytest.raises(InvalidToken, match="token_use"):
            verifier.verify(jwt.encode(_claims(token_use=use), **sign))


# ---------------------------------------------------------------- forgery, property-based

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
FORGERY_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40")) * 5


def _decoded(token: str) -> tuple[bytes, ...]:
    return tuple(
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split(".")
    )


@settings(max_examples=FORGERY_EXAMPLES, deadline=None, database=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(ALPHABET), st.booleans()),
        min_size=1,
        max_size=4,
    ),
    sub=st.sampled_from(["alice", "bob", "admin"]),
    admin=st.booleans(),
)
def test_an_edited_token_never_verifies_as_a_different_token(
    edits: list[tuple[int, str, bool]], sub: str, admin: bool
) -> None:
    """Random edits (replace or insert characters anywhere) of a valid token. The only
    edits that may still verify are those that decode to the very same bytes (the spare
    bits of a base64 segment's last character); every other one is refused."""
    original = mint_token(SECRET, sub, ["admin"] if admin else [], ttl_seconds=600)
    forged = list(original)
    for position, char, insert in edits:
        index = position % (len(forged) + (1 if insert else 0))
        if insert:
            forged.insert(index, char)
        else:
            forged[min(index, len(forged) - 1)] = char
    candidate = "".join(forged)
    try:
        hs_verifier().verify(candidate)
    except InvalidToken:
        return
    assert candidate.count(".") == 2
    assert _decoded(candidate) == _decoded(original), f"a forged token verified: {candidate}"
