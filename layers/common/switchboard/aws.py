"""AWS clients, created lazily (never at import time, never per invocation) and shared by
the repositories of one execution environment. Tests inject their own clients instead."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sqs import SQSClient

# Standard retry mode backs off on throttling and retries a lost answer (the lost-answer
# checks, DynamoRepository.wrote, exist because of it). Four attempts at most (botocore's
# `total_max_attempts`; the older `max_attempts` would count retries only) keep a user's
# request within seconds; longer retries are SQS's, which hold no Lambda invocation open.
_DEFAULT = Config(
    retries={"mode": "standard", "total_max_attempts": 4}, connect_timeout=2, read_timeout=5
)


@cache
def dynamodb() -> DynamoDBClient:
    return boto3.client("dynamodb", config=_DEFAULT)


@cache
def sqs() -> SQSClient:
    return boto3.client("sqs", config=_DEFAULT)


@cache
def sesv2() -> SESV2Client:
    return boto3.client("sesv2", config=_DEFAULT)


@cache
def management_api(endpoint_url: str, max_connections: int = 32) -> ApiGatewayManagementApiClient:
    config = Config(
        # One attempt: a throttled or failed push goes to the SQS delivery queue, whose
        # backoff does not hold this invocation (and the other devices' pushes) open.
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=2,
        read_timeout=5,
        # One pooled connection per fan-out worker, or the pool becomes the bottleneck.
        max_pool_connections=max_connections,
    )
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url, config=config)


@cache
def cloudwatch() -> Any:  # no mypy-boto3 stubs pinned for CloudWatch (read-only use)
    return boto3.client("cloudwatch", config=_DEFAULT)
