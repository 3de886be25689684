"""The admin dashboard, served by the analytics HTTP API on its own origin.

``GET /admin`` redirects to ``/admin/index.html``; the page, its script and stylesheet
are files of the layer (``static/`` beside this module), so ``sam deploy`` ships them with
the API that they read, and the page calls that API on the same origin (no CORS, the
token never crosses origins). ``GET /admin/config.json`` tells the page how operators
sign in: the deployment's OpenID Connect provider (authorization code + PKCE; the
``ADMIN_OIDC_*`` variables, template parameters ``AdminOidc*``), or nothing (then the
page uses the devserver's dev token locally, or a pasted one). Who may read analytics is
still decided per request by the API (a valid token with the admin role).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from switchboard.analytics.answers import SignInConfig
from switchboard.config import AdminDashboardSettings

FILES = Path(__file__).with_name("static")
CONTENT_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "admin.js": "text/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
}


def _headers(settings: AdminDashboardSettings) -> dict[str, str]:
    # The page talks to this origin and, to exchange a sign-in code, to the IdP's token
    # endpoint: nothing else may load or be called (no inline script, no framing).
    connect = " ".join(["'self'", *([settings.ADMIN_OIDC_TOKEN_URL] if settings.oidc else [])])
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@cache
def _file(name: str) -> bytes:
    return (FILES / name).read_bytes()


def dashboard_router(settings: AdminDashboardSettings) -> APIRouter:
    router = APIRouter(prefix="/admin", include_in_schema=False)
    headers = _headers(settings)

    @router.get("")
    def dashboard(request: Request) -> RedirectResponse:
        # Relative, so the page keeps working under a custom domain's base path.
        target = "index.html" if request.url.path.endswith("/") else "admin/index.html"
        return RedirectResponse(target, status_code=302)

    @router.get("/config.json")
    def sign_in_config() -> SignInConfig:
        return SignInConfig(oidc=settings.oidc)

    @router.get("/{name}")
    def asset(name: str) -> Response:
        if name not in CONTENT_TYPES:
            raise HTTPException(404, "Not Found")
        return Response(_file(name), media_type=CONTENT_TYPES[name], headers=headers)

    return router
