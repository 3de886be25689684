"""Switchboard's local stack: the AWS deployment described by template.yaml, on one machine.

API Gateway WebSocket + HTTP API emulation, Lambda-like worker processes running the
unmodified handler code, event-source mappings, all over an embedded moto server.
Never deployed.
"""

from __future__ import annotations

import os

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
STACK_NAME = "switchboard-local"

# The HS256 signing key the template's generated secret gets locally, so tokens minted by
# `python -m devserver token` verify in the authorizer. >= 32 bytes: PyJWT warns below that.
DEV_JWT_SECRET: str = os.environ.get(
    "SWITCHBOARD_DEV_JWT_SECRET",
    "switchboard-local-dev-only-signing-secret-0123456789abcdef",
)

__all__ = ["ACCOUNT_ID", "DEV_JWT_SECRET", "PARTITION", "REGION", "STACK_NAME", "URL_SUFFIX"]
