"""Integration tests: the handlers called in-process against an embedded moto server whose
tables and queues are created from template.yaml's own definitions (by the same
provisioning code the devserver uses, so tests cannot drift from the template)."""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from switchboard import aws
from switchboard.auth import mint_token

from devserver import ACCOUNT_ID, DEV_JWT_SECRET, REGION
from devserver.aws_faults import moto_server
from devserver.moto_fidelity import make_dynamodb_writes_atomic
from devserver.provision import provision
from devserver.template import FunctionSpec, Template
from devserver.workers import moto_client_environment

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    template: Template
    functions: dict[str, FunctionSpec]
    moto_url: str
    resources: dict[str, str]

    def env(self, logical_id: str) -> dict[str, str]:
        spec = self.functions[logical_id]
        # moto's management API answers only on the bare server URL, not under a stage.
        return {**spec.environment, "WEBSOCKET_ENDPOINT": self.moto_url}

    def handler(self, logical_id: str, **overrides: str) -> ModuleType:
        """Imports (fresh) the function's handler module with exactly its template env
        (``overrides`` change variables, as a template parameter would)."""
        spec = self.functions[logical_id]
        module_name = f"functions.{spec.code_uri.name}.{spec.handler.rsplit('.', 1)[0]}"
        with pytest.MonkeyPatch.context() as patch:
            for key, value in {**self.env(logical_id), **overrides}.items():
                patch.setenv(key, value)
            sys.modules.pop(module_name, None)
            return importlib.import_module(module_name)

    def client(self, service: str) -> Any:
        # A service chosen at run time: boto3's typed overloads want a literal name.
        return boto3.client(service, endpoint_url=self.moto_url, region_name=REGION)  # type: ignore[call-overload]

    def table(self, logical_id: str) -> str:
        return self.template.physical_name(logical_id)


@contextmanager
def local_stack(**extra_env: str) -> Iterator[Stack]:
    """An embedded moto server provisioned from template.yaml by the devserver's own code,
    with boto3 pointed at it (the `stack` fixture; the benchmarks use it too)."""
    make_dynamodb_writes_atomic()
    # The devserver's moto: faults (off unless configured) and the effect log that
    # tests/support/effects.py reads to prove a refusal changed nothing.
    server = moto_server("127.0.0.1")
    server.start()
    try:
        host, port = server.get_host_and_port()
        moto_url = f"http://{host}:{port}"
        with pytest.MonkeyPatch.context() as patch:
            for key, value in {
                **moto_client_environment(moto_url),
                "POWERTOOLS_METRICS_DISABLED": "true",
                **extra_env,
            }.items():
                patch.setenv(key, value)
            template = Template(ROOT / "template.yaml")
            template.moto_url = moto_url
            resources = provision(template, moto_url)
            functions = {f.logical_id: f for f in template.functions()}
            yield Stack(template, functions, moto_url, resources)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with local_stack() as running:
        yield running


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def token_for(user_id: str, roles: tuple[str, ...] = (), **kwargs: Any) -> str:
    return mint_token(DEV_JWT_SECRET, user_id, roles, **kwargs)


def pushed_frames(connection_id: str) -> list[dict[str, Any]]:
    """Frames moto's management API received for a connection (it concatenates them)."""
    backend = apigatewaymanagementapi_backends[ACCOUNT_ID][REGION]
    connection = backend.connections.get(connection_id)
    raw = connection.data.decode() if connection else ""
    decoder = json.JSONDecoder()
    frames, index = [], 0
    while index < len(raw):
        frame, index = decoder.raw_decode(raw, index)
        frames.append(frame)
    return frames


class FakeContext:
    """A LambdaContext as Powertools' tests build it."""

    function_name = "test"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:test"
    aws_request_id = "req"
    log_group_name = "/aws/lambda/test"
    log_stream_name = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def dynamodb_calls() -> Iterator[list[tuple[str, ...]]]:
    """Every DynamoDB call the handlers make: its operation and the tables it names, with
    the number of keys a batch reads in each (botocore's own hook, before it is sent)."""
    seen: list[tuple[str, ...]] = []

    def record(params: dict[str, Any], event_name: str, **_: Any) -> None:
        tables = [params["TableName"]] if "TableName" in params else []
        tables += [
            f"{table}:{len(request.get('Keys', []))}"
            for table, request in sorted(params.get("RequestItems", {}).items())
        ]
        tables += [
            next(iter(item.values()))["TableName"] for item in params.get("TransactItems", [])
        ]
        seen.append((event_name.rsplit(".", 1)[1], *tables))

    client = aws.dynamodb()
    client.meta.events.register("provide-client-params.dynamodb.*", record)
    yield seen
    client.meta.events.unregister("provide-client-params.dynamodb.*", record)
