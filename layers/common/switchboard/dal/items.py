"""Plain Python values <-> DynamoDB attribute values (numbers come back as int)."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def to_value(value: Any) -> Any:
    return _serializer.serialize(value)


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


def is_condition_failure(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def outcome_unknown(exc: Exception) -> bool:
    """A 500 from DynamoDB after botocore's own retries: the write may have landed (its
    answer was lost), or not. Throttling and validation errors are definite refusals."""
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "InternalServerError")


def write_token() -> str:
    """A fresh token for a conditional write to carry (see ``carries_token``)."""
    return secrets.token_hex(8)


def carries_token(item: dict[str, Any] | None, token: str, attribute: str) -> bool:
    """Whether ``item`` holds ``token`` in ``attribute`` (a string, or a string set).

    A write whose answer is lost is retried by botocore, and the retry meets the first
    attempt's own landed write: its condition fails, or every answer is lost. Reading the
    item back (consistently) and finding the token tells "ours, it landed" from "refused".
    """
    value = (item or {}).get(attribute, {})
    return bool(value.get("S") == token or token in value.get("SS", ()))
