"""A GoneException-aware client of the API Gateway management API (in the spirit of
Chalice's ``websocket_api.send``): post, get, delete and a bounded parallel fan-out.

A 410 Gone means the connection is dead for good: it is reported separately so callers
delete it and never retry. Throttling and 5xx are reported as retryable failures so the
caller can hand them to the delivery queue. A post refused for what it is (too large,
malformed) can never succeed: it is reported as refused, to be logged and dropped rather
than retried into the dead-letter queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from switchboard import aws
from switchboard.protocol import to_json

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient


class ConnectionGone(Exception):
    """The connection no longer exists (HTTP 410)."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(connection_id)
        self.connection_id = connection_id


class DeliveryFailed(Exception):
    """A post failed for a reason worth retrying later (throttling, 5xx, network)."""

    def __init__(self, connection_id: str, reason: str) -> None:
        super().__init__(f"{connection_id}: {reason}")
        self.connection_id = connection_id
        self.reason = reason


class PostRefused(Exception):
    """API Gateway refused the post itself (413 PayloadTooLargeException, 400
    BadRequestException): the same bytes will be refused again, so never retry them."""

    def __init__(self, connection_id: str, reason: str) -> None:
        super().__init__(f"{connection_id}: {reason}")
        self.connection_id = connection_id
        self.reason = reason


# Error codes that are about the post, not about the moment: retrying cannot help. (A 403
# is not among them: it is a permission mistake that a fix and a redrive recover from.)
PERMANENT_POST_ERRORS = frozenset({"PayloadTooLargeException", "BadRequestException"})


@dataclass
class FanOutResult:
    delivered: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def encode(payload: dict[str, Any] | bytes | str) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return to_json(payload).encode()


class ManagementApi:
    def __init__(
        self,
        endpoint_url: str,
        *,
        client: ApiGatewayManagementApiClient | None = None,
        max_concurrency: int = 32,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._client = client
        self._max_concurrency = max_concurrency

    @property
    def client(self) -> ApiGatewayManagementApiClient:
        if self._client is None:
            self._client = aws.management_api(self._endpoint_url, self._max_concurrency)
        return self._client

    def post(self, connection_id: str, payload: dict[str, Any] | bytes | str) -> None:
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=encode(payload))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in PERMANENT_POST_ERRORS:
                raise PostRefused(connection_id, code) from None
            raise _classify(connection_id, exc) from None
        except BotoCoreError as exc:
            raise DeliveryFailed(connection_id, type(exc).__name__) from None

    def get(self, connection_id: str) -> dict[str, Any]:
        try:
            response = self.client.get_connection(ConnectionId=connection_id)
        except ClientError as exc:
            raise _classify(connection_id, exc) from None
        return {k: v for k, v in response.items() if k != "ResponseMetadata"}

    def delete(self, connection_id: str) -> bool:
        """Closes the connection; False if it was already gone."""
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            error = _classify(connection_id, exc)
            if isinstance(error, ConnectionGone):
                return False
            raise error from None
        return True

    def fan_out(
        self, connection_ids: Iterable[str], payload: dict[str, Any] | bytes | str
    ) -> FanOutResult:
        """Posts one payload to many connections, in parallel, at most
        ``max_concurrency`` at a time (the payload is serialised once)."""
        ids = list(dict.fromkeys(connection_ids))
        data = encode(payload)
        result = FanOutResult()
        if not ids:
            return result

        def send(connection_id: str) -> tuple[str, Exception | None]:
            try:
                self.post(connection_id, data)
            except (ConnectionGone, DeliveryFailed, PostRefused) as exc:
                return connection_id, exc
            return connection_id, None

        if len(ids) == 1:
            outcomes = [send(ids[0])]
        else:
            workers = min(self._max_concurrency, len(ids))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(send, ids))
        for connection_id, error in outcomes:
            if error is None:
                result.delivered.append(connection_id)
            elif isinstance(error, ConnectionGone):
                result.gone.append(connection_id)
            elif isinstance(error, PostRefused):
                result.refused[connection_id] = error.reason
            else:
                result.failed[connection_id] = str(error)
        return result

    def close_all(
        self, connection_ids: Iterable[str], *, attempts: int = 3, backoff: float = 0.1
    ) -> FanOutResult:
        """Closes many connections in parallel (bounded); a DELETE that fails with
        throttling/5xx is tried again, up to ``attempts`` times. ``delivered`` holds the
        closed ones, ``gone`` those already closed, ``failed`` the rest."""
        ids = list(dict.fromkeys(connection_ids))
        result = FanOutResult()

        def close(connection_id: str) -> tuple[str, bool | Exception]:
            for attempt in range(attempts):
                try:
                    return connection_id, self.delete(connection_id)
                except DeliveryFailed as exc:
                    if attempt == attempts - 1:
                        return connection_id, exc
                    time.sleep(backoff * 2**attempt)
            return connection_id, DeliveryFailed(connection_id, "no attempt")

        if ids:
            with ThreadPoolExecutor(max_workers=min(self._max_concurrency, len(ids))) as pool:
                for connection_id, outcome in pool.map(close, ids):
                    if outcome is True:
                        result.delivered.append(connection_id)
                    elif outcome is False:
                        result.gone.append(connection_id)
                    else:
                        result.failed[connection_id] = str(outcome)
        return result


def _classify(connection_id: str, exc: ClientError) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code == "GoneException" or status == 410:
        return ConnectionGone(connection_id)
    return DeliveryFailed(connection_id, code or f"HTTP {status}")
