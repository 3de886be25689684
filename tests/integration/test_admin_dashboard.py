"""The admin dashboard as the analytics API serves it (``/admin``, the route a deployment
has): the page and its files with a strict CSP, the sign-in settings from the template's
AdminOidc* parameters, and the admin role read from the claim JwtRolesClaim names."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt

from devserver import DEV_JWT_SECRET
from tests.integration.conftest import FakeContext, Stack, token_for
from tests.integration.test_analytics import http_event

OIDC = {
    "ADMIN_OIDC_AUTHORIZE_URL": "https://ops.auth.us-east-1.amazoncognito.com/oauth2/authorize",
    "ADMIN_OIDC_TOKEN_URL": "https://ops.auth.us-east-1.amazoncognito.com/oauth2/token",
    "ADMIN_OIDC_CLIENT_ID": "dashboard-client",
}


def get(api: Any, path: str, token: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = api.lambda_handler(http_event(path, token), FakeContext())
    return response


def test_admin_redirects_to_the_page_and_serves_its_files(stack: Stack) -> None:
    api = stack.handler("AnalyticsApiFunction")
    # /admin -> the page, by a relative redirect (works under a custom domain's base path)
    response = get(api, "/admin")
    assert response["statusCode"] == 302
    assert response["headers"]["location"] == "admin/index.html"
    page = get(api, "/admin/index.html")
    assert page["statusCode"] == 200
    assert page["headers"]["content-type"].startswith("text/html")
    assert 'src="admin.js"' in page["body"]
    csp = page["headers"]["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    script = get(api, "/admin/admin.js")
    assert script["headers"]["content-type"].startswith("text/javascript")
    assert "code_challenge_method" in script["body"]
    # Nothing but the dashboard's own files: no path outside, no other name
    for path in ("/admin/..%2Fapp.py", "/admin/dashboard.py", "/admin/nothing.js"):
        assert get(api, path)["statusCode"] == 404, path


def test_sign_in_settings_come_from_the_template_parameters(stack: Stack) -> None:
    # Without AdminOidc* parameters (the template's defaults): no provider
    plain = stack.handler("AnalyticsApiFunction")
    assert json.loads(get(plain, "/admin/config.json")["body"]) == {"oidc": None}
    # With them: the page gets the endpoints, and its CSP lets it call the token endpoint
    api = stack.handler("AnalyticsApiFunction", **OIDC)
    config = json.loads(get(api, "/admin/config.json")["body"])["oidc"]
    assert config["authorizeUrl"] == OIDC["ADMIN_OIDC_AUTHORIZE_URL"]
    assert config["tokenUrl"] == OIDC["ADMIN_OIDC_TOKEN_URL"]
    assert config["clientId"] == "dashboard-client" and config["scopes"] == "openid"
    assert config["token"] == "id_token"
    csp = get(api, "/admin/index.html")["headers"]["content-security-policy"]
    assert f"connect-src 'self' {OIDC['ADMIN_OIDC_TOKEN_URL']};" in csp


def _cognito_style_token(groups: list[str]) -> str:
    now = int(time.time())
    claims = {"sub": "ops-1", "cognito:groups": groups, "iat": now, "exp": now + 600}
    return jwt.encode(claims, DEV_JWT_SECRET, algorithm="HS256")


def test_the_admin_role_is_read_from_the_configured_claim(stack: Stack) -> None:
    # Given a deployment whose IdP lists roles in cognito:groups (JwtRolesClaim)
    api = stack.handler("AnalyticsApiFunction", JWT_ROLES_CLAIM="cognito:groups")
    # Then a member of the admin group reads analytics, others are forbidden
    assert (
        get(api, "/api/analytics/connections", _cognito_style_token(["admin"]))["statusCode"] == 200
    )
    assert (
        get(api, "/api/analytics/connections", _cognito_style_token(["ops"]))["statusCode"] == 403
    )
    # And a "roles" claim means nothing there (one claim decides, never either)
    assert (
        get(api, "/api/analytics/connections", token_for("ops-2", ("admin",)))["statusCode"] == 403
    )
    # While the default claim is "roles"
    default = stack.handler("AnalyticsApiFunction")
    assert (
        get(default, "/api/analytics/connections", _cognito_style_token(["admin"]))["statusCode"]
        == 403
    )
