"""The management-API client: Gone vs retryable failures, bounded parallel fan-out."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from switchboard.gateway import ConnectionGone, DeliveryFailed, ManagementApi


def stubbed() -> tuple[ManagementApi, Stubber]:
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url="https://abc.execute-api.us-east-1.amazonaws.com/dev",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    return ManagementApi("unused", client=client), Stubber(client)


def test_gone_is_a_typed_error() -> None:
    api, stub = stubbed()
    stub.add_client_error("post_to_connection", "GoneException", http_status_code=410)
    with stub, pytest.raises(ConnectionGone) as info:
        api.post("c1", {"type": "x"})
    assert info.value.connection_id == "c1"


@pytest.mark.parametrize(
    ("code", "status"),
    [("LimitExceededException", 429), ("InternalServerError", 500), ("ForbiddenException", 403)],
)
def test_throttling_and_server_errors_are_retryable_failures(code: str, status: int) -> None:
    api, stub = stubbed()
    stub.add_client_error("post_to_connection", code, http_status_code=status)
    with stub, pytest.raises(DeliveryFailed, match=code):
        api.post("c1", b"{}")


def test_delete_of_gone_connection_is_not_an_error() -> None:
    api, stub = stubbed()
    stub.add_client_error("delete_connection", "GoneException", http_status_code=410)
    stub.add_response("delete_connection", {})
    with stub:
        assert api.delete("c1") is False
        assert api.delete("c2") is True


def test_fan_out_sorts_outcomes() -> None:
    api, stub = stubbed()
    # Single connection: no thread pool, so the stub's order is deterministic.
    stub.add_client_error("post_to_connection", "GoneException", http_status_code=410)
    with stub:
        result = api.fan_out(["c1", "c1"], {"type": "x"})
    assert result.gone == ["c1"]
    assert result.delivered == []


class CountingClient:
    """Records how many posts run at once; each post takes a few milliseconds."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.posted: list[str] = []
        self.lock = threading.Lock()

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(0.005)
        with self.lock:
            self.active -= 1
            self.posted.append(ConnectionId)
        return {}


def test_fan_out_is_parallel_and_bounded() -> None:
    client = CountingClient()
    api = ManagementApi("unused", client=client, max_concurrency=8)  # type: ignore[arg-type]
    ids = [f"c{i}" for i in range(100)]
    result = api.fan_out(ids, {"type": "x"})
    assert sorted(result.delivered) == sorted(ids)
    assert sorted(client.posted) == sorted(ids)
    assert 1 < client.peak <= 8
