"""Every effect on the emulated AWS, recorded: what a test looks at to prove that a refused
request changed nothing, for anyone.

An effect is a request that succeeded and is not a pure read: a DynamoDB write
(PutItem, UpdateItem, DeleteItem, TransactWriteItems, BatchWriteItem), an SQS send or
delete, an S3 PUT/POST/DELETE, an SES e-mail, a management-API post or delete (a push to,
or the closing of, any connection). Every change to a table, a queue, a bucket or a
connection goes through one, so an empty window of this log means that nothing changed
anywhere - and it is stricter than comparing stored items: it also sees a write that put
back the same value, or a push to a connection nobody is watching. Requests that failed
(a ConditionalCheckFailed, a cancelled transaction, a fault injected `before`) changed
nothing and are not recorded; a fault injected `after` lets the request run, so it is.

Each effect carries the function that made it (the User-Agent app id the devserver gives
every worker, see devserver/aws_faults.py; `-` for a caller without one, such as a test
calling handlers in-process), so a test can look at what one route's invocation did while
the consumers of streams and queues go on in the background.

`GET /__devserver/effects?after=<seq>` (HTTP port) returns the effects after a sequence
number and the route functions' busy workers; tests/support/effects.py is the one helper
the tests use, in-process and through the devserver.
"""

from __future__ import annotations

import io
import itertools
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

__all__ = ["EFFECTS", "EffectLog", "RecordingApp", "function_of"]

# A request whose operation starts with one of these reads and changes nothing. (A
# ReceiveMessage only hides messages for a while; the receivers are the devserver's own
# pollers, a function never receives, and counting their long polls would bury the rest.)
READ_OPERATIONS = (
    *("Get", "Describe", "List", "Query", "Scan", "BatchGet", "TransactGet", "Head"),
    "ReceiveMessage",
)
_APP_ID = re.compile(r"\bapp/sbfn-([A-Za-z0-9]+)")
# Long enough for any test's window; a window older than the log is reported, not hidden.
CAPACITY = 50_000


def function_of(user_agent: str) -> str:
    """The logical id of the function that made a request (its botocore app id), or `-`."""
    match = _APP_ID.search(user_agent)
    return match.group(1) if match else "-"


class EffectLog:
    """Thread-safe (moto serves each request on its own thread)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._lock = threading.Lock()
        self._effects: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._last = 0

    def record(
        self,
        function: str,
        service: str,
        operation: str,
        target: str = "",
        delays: tuple[int, ...] = (),
    ) -> None:
        with self._lock:
            self._last = next(self._seq)
            self._effects.append(
                {
                    "seq": self._last,
                    "function": function,
                    "service": service,
                    "operation": operation,
                    "target": target[:200],
                    "delaySeconds": list(delays),  # of SQS sends: when each may be received
                }
            )

    @property
    def last(self) -> int:
        with self._lock:
            return self._last

    def after(self, seq: int) -> dict[str, Any]:
        """The effects recorded after ``seq``; ``complete`` is False when some were already
        dropped from the log (the window is too old to prove anything)."""
        with self._lock:
            oldest = self._effects[0]["seq"] if self._effects else self._last + 1
            effects = list(itertools.takewhile(lambda e: e["seq"] > seq, reversed(self._effects)))
            effects.reverse()
            return {"last": self._last, "complete": oldest <= seq + 1, "effects": effects}


EFFECTS = EffectLog()

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class RecordingApp:
    """WSGI middleware in front of moto's app: records every effect (see the module doc)."""

    def __init__(self, app: WsgiApp, log: EffectLog = EFFECTS) -> None:
        self.app = app
        self.log = log

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        effect = self._classify(environ)
        if effect is None:
            return self.app(environ, start_response)

        def recording_start_response(status: str, *args: Any, **kwargs: Any) -> Any:
            if status[:1] == "2":
                self.log.record(*effect)
            return start_response(status, *args, **kwargs)

        return self.app(environ, recording_start_response)

    @staticmethod
    def _classify(
        environ: dict[str, Any],
    ) -> tuple[str, str, str, str, tuple[int, ...]] | None:
        """(function, service, operation, target, delays) of a mutating request, None for
        a read."""
        service, operation, target = _operation(environ)
        if operation.startswith(READ_OPERATIONS):
            return None
        delays: tuple[int, ...] = ()
        if operation.startswith("SendMessage"):
            delays = tuple(
                int(d) for d in re.findall(rb'"DelaySeconds"\s*:\s*(\d+)', _peek(environ))
            )
        function = function_of(environ.get("HTTP_USER_AGENT", ""))
        return function, service, operation, target, delays


def _operation(environ: dict[str, Any]) -> tuple[str, str, str]:
    """(service, operation, target) of a request to moto."""
    method = environ.get("REQUEST_METHOD", "GET")
    path = unquote(environ.get("PATH_INFO", ""))
    amz_target = environ.get("HTTP_X_AMZ_TARGET", "")
    if amz_target:  # JSON protocols: DynamoDB, DynamoDB Streams, SQS, Secrets Manager
        service, _, operation = amz_target.rpartition(".")
        if operation.startswith(READ_OPERATIONS):  # most requests: leave the body alone
            return service, operation, ""
        return service.split("_")[0], operation, _table_or_queue(environ)
    if "/@connections/" in path:  # the management API (moto's, in-process)
        operations = {"POST": "PostToConnection", "DELETE": "DeleteConnection"}
        return "execute-api", operations.get(method, "GetConnection"), path.rsplit("/", 1)[-1]
    if method in {"GET", "HEAD", "OPTIONS"}:
        return "http", "Get", path
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = _form_action(environ)  # query protocols: SES, STS, SQS (old botocore)
        if action is not None:
            return "query", action, ""
    return "s3", method, path  # S3 (REST): PUT, POST, DELETE


def _table_or_queue(environ: dict[str, Any]) -> str:
    """The request's TableName/QueueUrl, for the report (the body is put back)."""
    body = _peek(environ)
    match = re.search(rb'"(?:TableName|QueueUrl)"\s*:\s*"([^"]{1,300})"', body)
    return match.group(1).decode(errors="replace") if match else ""


def _form_action(environ: dict[str, Any]) -> str | None:
    values = parse_qs(_peek(environ).decode(errors="replace")).get("Action")
    return values[0] if values else None


def _peek(environ: dict[str, Any]) -> bytes:
    """The request body, read and put back for the app behind."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body
