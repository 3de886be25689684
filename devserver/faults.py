"""Fault injection of the local stack: the management API, AWS calls and streams.

Fault injection makes the emulated API Gateway management API misbehave the way the real
one can, so the delivery path's retry machinery (SQS delivery queue, backoff, DLQ) can be
exercised locally and in tests. `POST /__devserver/faults` (HTTP port) sets, `GET` shows,
`DELETE` clears::

    {"managementApi": {
        "failures": [{"connectionId": "<id or *>", "status": 429, "count": 2}],
        "failRate": 0.05, "failStatus": 429, "seed": 1}}

A `POST /@connections/{id}` that matches a failure rule (first rule with count left, in
order; every match uses one count) or loses the seeded `failRate` draw is answered with
that status and a botocore-parsable error body, and the frame is NOT delivered. Note that
boto3's own retries (standard mode) send a failed post again: each HTTP post counts.

The same document may hold `aws` (DynamoDB/SQS calls of the functions fail) and `streams`
(stream batches delivered twice): see devserver/aws_faults.py.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devserver.aws_faults import AWS_FAULTS, STREAM_FAULTS

__all__ = [
    "ERROR_SHAPES",
    "FAULTS",
    "FailureRule",
    "FaultConfigError",
    "ManagementFaults",
    "add_fault_routes",
    "error_response",
]

log = logging.getLogger("devserver.faults")

# status -> (x-amzn-ErrorType, message), as API Gateway answers them.
ERROR_SHAPES: dict[int, tuple[str, str]] = {
    429: ("LimitExceededException", "Too Many Requests"),
    500: ("InternalServerError", "Internal server error"),
    502: ("BadGatewayException", "Bad Gateway"),
    503: ("ServiceUnavailableException", "Service Unavailable"),
    504: ("GatewayTimeoutException", "Gateway Timeout"),
}


class FaultConfigError(ValueError):
    """The fault document is invalid (answered with 400)."""


@dataclass
class FailureRule:
    connection_id: str  # an id or "*"
    status: int
    count: int  # posts left to fail

    def matches(self, connection_id: str) -> bool:
        return self.count > 0 and self.connection_id in ("*", connection_id)

    def wire(self) -> dict[str, Any]:
        return {"connectionId": self.connection_id, "status": self.status, "count": self.count}


def _status(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in ERROR_SHAPES:
        raise FaultConfigError(f"{where}: status must be one of {sorted(ERROR_SHAPES)}")
    return value


class ManagementFaults:
    """Thread-safe: checked from the event loop, configured from the HTTP admin routes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FailureRule] = []
        self._fail_rate = 0.0
        self._fail_status = 429
        self._seed: int | None = None
        self._rng = random.Random()  # noqa: S311 - fault injection, not security
        self._injected: dict[int, int] = {}
        self._by_connection: dict[str, int] = {}
        self._posts_checked = 0

    def configure(self, document: Any) -> None:
        """Replaces the configuration (and resets the counters)."""
        if not isinstance(document, dict):
            raise FaultConfigError("expected a JSON object")
        unknown = set(document) - {"managementApi", "aws", "streams"}
        if unknown:
            raise FaultConfigError(f"unknown keys: {sorted(unknown)}")
        config = document.get("managementApi") or {}
        if not isinstance(config, dict):
            raise FaultConfigError("managementApi must be an object")
        unknown = set(config) - {"failures", "failRate", "failStatus", "seed"}
        if unknown:
            raise FaultConfigError(f"managementApi: unknown keys: {sorted(unknown)}")
        rules: list[FailureRule] = []
        failures = config.get("failures") or []
        if not isinstance(failures, list):
            raise FaultConfigError("failures must be a list")
        for i, item in enumerate(failures):
            where = f"failures[{i}]"
            if not isinstance(item, dict):
                raise FaultConfigError(f"{where} must be an object")
            connection_id = item.get("connectionId", "*")
            count = item.get("count", 1)
            if not isinstance(connection_id, str) or not connection_id:
                raise FaultConfigError(f"{where}: connectionId must be an id or '*'")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise FaultConfigError(f"{where}: count must be an integer >= 0")
            rules.append(FailureRule(connection_id, _status(item.get("status", 429), where), count))
        rate = config.get("failRate", 0.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise FaultConfigError("failRate must be a number in [0, 1]")
        fail_status = _status(config.get("failStatus", 429), "failStatus")
        seed = config.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FaultConfigError("seed must be an integer")
        with self._lock:
            self._rules = rules
            self._fail_rate = float(rate)
            self._fail_status = fail_status
            self._seed = seed
            self._rng = random.Random(seed)  # noqa: S311 - deterministic on purpose
            self._injected = {}
            self._by_connection = {}
            self._posts_checked = 0
        log.info(
            "faults   management API: %d rule(s), failRate %.3f (status %d, seed %s)",
            len(rules),
            rate,
            fail_status,
            seed,
        )

    def clear(self) -> None:
        self.configure({})

    def check(self, connection_id: str) -> int | None:
        """Decides the fate of one post: the status to fail it with, or None."""
        with self._lock:
            self._posts_checked += 1
            status: int | None = None
            for rule in self._rules:
                if rule.matches(connection_id):
                    rule.count -= 1
                    status = rule.status
                    break
            # The draw happens for every post while a rate is set, so a given seed gives
            # the same sequence of decisions whatever the rules consumed.
            if self._fail_rate > 0:
                drawn = self._rng.random() < self._fail_rate
                if status is None and drawn:
                    status = self._fail_status
            if status is not None:
                self._injected[status] = self._injected.get(status, 0) + 1
                self._by_connection[connection_id] = self._by_connection.get(connection_id, 0) + 1
            return status

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "managementApi": {
                    "failures": [r.wire() for r in self._rules],
                    "failRate": self._fail_rate,
                    "failStatus": self._fail_status,
                    "seed": self._seed,
                },
                "injected": {
                    "total": sum(self._injected.values()),
                    "byStatus": {str(k): v for k, v in sorted(self._injected.items())},
                    "byConnection": dict(self._by_connection),
                    "postsChecked": self._posts_checked,
                },
            }


def error_response(status: int) -> web.Response:
    """An API Gateway error answer botocore parses (rest-json: x-amzn-ErrorType)."""
    error_type, message = ERROR_SHAPES[status]
    return web.Response(
        status=status,
        text=json.dumps({"message": message}),
        content_type="application/json",
        headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/"},
    )


# One devserver per process: the WebSocket app (management API) and the HTTP app (admin
# routes) share this instance.
FAULTS = ManagementFaults()


# ---------------------------------------------------------------------- admin routes
def add_fault_routes(app: web.Application, faults: ManagementFaults = FAULTS) -> None:
    """`/__devserver/faults` (GET, POST, DELETE): for the devserver's own pages and local
    tools only (http_api.py refuses other sites)."""

    def snapshot() -> dict[str, Any]:
        return {
            **faults.snapshot(),
            "aws": AWS_FAULTS.snapshot(),
            "streams": STREAM_FAULTS.snapshot(),
        }

    async def get_faults(_: web.Request) -> web.Response:
        return web.json_response(snapshot())

    async def set_faults(request: web.Request) -> web.Response:
        try:
            document = json.loads(await request.read() or b"{}")
            faults.configure(document)
            AWS_FAULTS.configure(document.get("aws"))
            STREAM_FAULTS.configure(document.get("streams"))
        except (ValueError, FaultConfigError) as exc:
            return web.json_response({"message": str(exc)}, status=400)
        return web.json_response(snapshot())

    async def clear_faults(_: web.Request) -> web.Response:
        faults.clear()
        AWS_FAULTS.configure(None)
        STREAM_FAULTS.configure(None)
        return web.json_response(snapshot())

    app.router.add_get("/__devserver/faults", get_faults)
    app.router.add_post("/__devserver/faults", set_faults)
    app.router.add_delete("/__devserver/faults", clear_faults)
