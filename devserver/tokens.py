"""Dev tokens: HS256 JWTs signed with the devserver's dev secret, as the authorizer expects.

Uses the layer's `switchboard.auth.mint_token` when it exists (one definition of the
claims), else an equivalent local minting (sub, roles, iat, nbf, exp).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jwt

from devserver import DEV_JWT_SECRET

__all__ = ["DEMO_USERS", "mint"]

DEMO_USERS: tuple[tuple[str, bool], ...] = (
    ("alice", False),
    ("bob", False),
    ("carol", False),
    ("admin", True),
)

_LAYER = Path(__file__).resolve().parent.parent / "layers" / "common"


def _local_mint(secret: str, user_id: str, roles: Sequence[str], ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "sub": user_id,
        "roles": list(roles),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def mint(
    user_id: str,
    admin: bool = False,
    ttl_seconds: int = 86400,
    secret: str = DEV_JWT_SECRET,
) -> str:
    roles = ("admin",) if admin else ()
    if str(_LAYER) not in sys.path:
        sys.path.append(str(_LAYER))
    try:
        from switchboard.auth import mint_token  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _local_mint(secret, user_id, roles, ttl_seconds)
    token: str = mint_token(secret, user_id, roles=roles, ttl_seconds=ttl_seconds)
    return token
