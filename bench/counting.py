"""AWS calls counted with botocore's event hooks.

Every API call a botocore client makes emits ``before-call.<service>.<Operation>`` once
(retries of the same call do not emit it again), with the operation's parameters. A
``CallCounter`` registers on the clients it is given and keeps, per "service.Operation",
the number of calls and the number of DynamoDB items they touched (what request units
are billed on), so the cost model works from what the code really did.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

EVENT = "before-call"


def items_touched(operation: str, params: dict[str, Any]) -> int:
    """The number of items a DynamoDB call reads or writes, from its request parameters
    (a Query or Scan: 1, since what it reads is only known from its response)."""
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    if operation == "TransactGetItems":
        return len(params.get("TransactItems", []))
    if operation == "BatchGetItem":
        return sum(len(r.get("Keys", [])) for r in params.get("RequestItems", {}).values())
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in params.get("RequestItems", {}).values())
    return 1


def _json_body(request: Any) -> dict[str, Any]:
    """The parameters of a JSON-protocol request (DynamoDB's) as botocore serialised them."""
    body = request.get("body") if isinstance(request, dict) else None
    try:
        parsed = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


class CallCounter:
    """Counts the AWS API calls of the clients it watches, by "service.Operation"."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items: Counter[str] = Counter()
        # milliseconds spent in each kind of call (counting_every_client only): where the
        # time of an in-process run goes, the embedded moto's answers included
        self.ms: Counter[str] = Counter()
        self._clients: list[Any] = []

    def _count(self, event_name: str, params: Any = None, **_: Any) -> None:
        # event_name: "before-call.<service>.<Operation>"
        _hook, service, operation = event_name.split(".", 2)
        key = f"{service}.{operation}"
        self.calls[key] += 1
        if service == "dynamodb":
            self.items[key] += items_touched(operation, _json_body(params))

    def watch(self, *clients: Any) -> CallCounter:
        for client in clients:
            if not any(client is c for c in self._clients):
                client.meta.events.register(f"{EVENT}.*.*", self._count)
                self._clients.append(client)
        return self

    def close(self) -> None:
        for client in self._clients:
            client.meta.events.unregister(f"{EVENT}.*.*", self._count)
        self._clients.clear()

    def clear(self) -> None:
        self.calls.clear()
        self.items.clear()

    def service_calls(self, service: str) -> int:
        return sum(n for key, n in self.calls.items() if key.startswith(f"{service}."))

    def scans(self) -> int:
        return sum(n for key, n in self.calls.items() if key.endswith(".Scan"))

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.calls.items()))

    @contextmanager
    def measure(self) -> Iterator[CallCounter]:
        """Counts only what runs inside the block (into a fresh counter)."""
        inner = CallCounter()
        before_calls, before_items = Counter(self.calls), Counter(self.items)
        try:
            yield inner
        finally:
            inner.calls = self.calls - before_calls
            inner.items = self.items - before_items


@contextmanager
def counting(clients: Iterable[Any]) -> Iterator[CallCounter]:
    """A CallCounter watching ``clients`` for the duration of the block."""
    counter = CallCounter().watch(*clients)
    try:
        yield counter
    finally:
        counter.close()


@contextmanager
def counting_every_client() -> Iterator[CallCounter]:
    """A CallCounter of every botocore client in this process for the duration of the
    block, including clients created inside it (a stream consumer's, a fresh management
    API client): it wraps ``BaseClient._make_api_call``, which runs once per API call
    whatever the retries, with the call's parameters as the caller gave them."""
    from botocore.client import BaseClient

    counter = CallCounter()
    original = BaseClient._make_api_call

    def counted(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        key = f"{service}.{operation_name}"
        counter.calls[key] += 1
        if service == "dynamodb":
            counter.items[key] += items_touched(operation_name, api_params)
        start = time.perf_counter()
        try:
            return original(client, operation_name, api_params)
        finally:
            counter.ms[key] += (time.perf_counter() - start) * 1000

    BaseClient._make_api_call = counted  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
