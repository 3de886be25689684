"""A small OpenID Connect provider for the dashboard's sign-in test, on 127.0.0.1.

It plays the deployment's IdP (Cognito's hosted UI, Auth0...) as the dashboard meets it:
``GET /authorize`` (authorization code flow, PKCE S256 required, ``redirect_uri`` and
``client_id`` checked) answers with a redirect carrying a single-use code for the user
the test chose; ``POST /token`` redeems it only with the verifier whose SHA-256 is the
challenge, and returns an ``id_token`` signed with the devserver's dev secret (so the
analytics API verifies it exactly as it verifies any token) with the user's roles.
Every redemption is recorded, so a test can check what the page really sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from devserver.tokens import mint

CLIENT_ID = "switchboard-dashboard"


@dataclass
class Grant:
    user: str
    admin: bool
    challenge: str
    redirect_uri: str


@dataclass
class OidcProvider:
    server: ThreadingHTTPServer
    user: str = "ops-admin"  # who signs in at the next /authorize
    admin: bool = True
    grants: dict[str, Grant] = field(default_factory=dict)
    redeemed: list[dict[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def start_provider() -> OidcProvider:
    provider: OidcProvider

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:  # quiet: pytest keeps the output
            pass

        def _send(self, status: int, body: dict[str, Any], **headers: str) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            # Like Cognito's token endpoint: a browser page of another origin may call it.
            self.send_header("Access-Control-Allow-Origin", "*")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path != "/authorize":
                self._send(404, {"error": "not_found"})
                return
            if (
                query.get("response_type") != "code"
                or query.get("client_id") != CLIENT_ID
                or query.get("code_challenge_method") != "S256"
                or not query.get("code_challenge")
                or not query.get("redirect_uri", "").startswith("http://127.0.0.1:")
            ):
                provider.refused.append(f"authorize {query}")
                self._send(400, {"error": "invalid_request"})
                return
            code = secrets.token_urlsafe(16)
            provider.grants[code] = Grant(
                provider.user, provider.admin, query["code_challenge"], query["redirect_uri"]
            )
            target = (
                query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
            )
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self._send(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            grant = provider.grants.pop(form.get("code", ""), None)  # single use
            if (
                grant is None
                or form.get("grant_type") != "authorization_code"
                or form.get("client_id") != CLIENT_ID
                or form.get("redirect_uri") != grant.redirect_uri
                or _s256(form.get("code_verifier", "")) != grant.challenge
            ):
                provider.refused.append(f"token {sorted(form)}")
                self._send(400, {"error": "invalid_grant"})
                return
            provider.redeemed.append(form)
            token = mint(grant.user, admin=grant.admin, ttl_seconds=3600)
            self._send(
                200,
                {
                    "id_token": token,
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                },
                **{"Cache-Control": "no-store"},
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider = OidcProvider(server)
    threading.Thread(target=server.serve_forever, name="oidc-provider", daemon=True).start()
    return provider
