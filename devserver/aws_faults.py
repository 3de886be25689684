"""Chaos for the emulated AWS services: the functions' DynamoDB and SQS calls can fail,
and DynamoDB stream batches can be delivered twice.

Configured through `POST /__devserver/faults` next to the management-API faults::

    {"aws": {"failRate": 0.1, "services": ["dynamodb", "sqs"], "mode": "both", "seed": 1,
             "operations": ["TransactWriteItems"], "functions": ["AggregatorFunction"]},
     "streams": {"replayRate": 0.2, "seed": 1}}

- `aws`: each request a *function* makes (its boto3 User-Agent carries the app id the
  devserver gives every worker, `AWS_SDK_UA_APP_ID=sbfn-<LogicalId>`) to a listed service
  (and, if given, one of the listed `operations`, from one of the listed `functions` by
  logical id) loses a seeded draw with probability
  `failRate` and is answered 500. With mode
  `before` the request never reaches moto (nothing happened); with `after` moto runs it
  and the answer is lost (it happened, the caller cannot know) - the ambiguous failure
  real networks have; `both` picks one of the two at random. The devserver's own pollers
  (the event-source mappings play Lambda's part) are never failed.
- `streams`: after a DynamoDB stream batch was processed, it is delivered again with
  probability `replayRate`, as Lambda does when an invocation's answer is lost.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["AWS_FAULTS", "STREAM_FAULTS", "AwsFaults", "FaultyApp", "StreamFaults", "app_id"]

APP_ID_PREFIX = "sbfn-"
SERVICES = {"dynamodb": "DynamoDB_", "sqs": "AmazonSQS."}
MODES = ("before", "after", "both")


def app_id(logical_id: str) -> str:
    """The botocore app id of a function's workers (User-Agent `app/<id>`, <= 50 chars)."""
    return (APP_ID_PREFIX + logical_id)[:50]


class _Config(ValueError):
    pass


def _section(config: Any, name: str, keys: set[str]) -> dict[str, Any]:
    """One section of the fault document: absent means {}, else an object of ``keys``."""
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise _Config(f"{name} must be an object")
    unknown = set(config) - keys
    if unknown:
        raise _Config(f"{name}: unknown keys: {sorted(unknown)}")
    return config


def _rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise _Config(f"{name} must be a number in [0, 1]")
    return float(value)


def _seed(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _Config("seed must be an integer")
    return value


class AwsFaults:
    """Thread-safe (moto serves each request on its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configure(None)

    def configure(self, config: Any) -> None:
        config = _section(
            config, "aws", {"failRate", "services", "operations", "functions", "mode", "seed"}
        )
        services = config.get("services", sorted(SERVICES))
        if not isinstance(services, list) or not set(services) <= set(SERVICES):
            raise _Config(f"aws.services must be a list of {sorted(SERVICES)}")
        operations = config.get("operations")
        if operations is not None and (
            not isinstance(operations, list) or not all(isinstance(o, str) for o in operations)
        ):
            raise _Config("aws.operations must be a list of operation names")
        functions = config.get("functions")
        if functions is not None and (
            not isinstance(functions, list) or not all(isinstance(f, str) for f in functions)
        ):
            raise _Config("aws.functions must be a list of function logical ids")
        mode = config.get("mode", "before")
        if mode not in MODES:
            raise _Config(f"aws.mode must be one of {MODES}")
        rate = _rate(config.get("failRate", 0.0), "aws.failRate")
        seed = _seed(config.get("seed"))
        with self._lock:
            self.rate, self.services, self.mode, self.seed = rate, set(services), mode, seed
            self.operations = set(operations) if operations is not None else None
            self.functions = {app_id(f) for f in functions} if functions is not None else None
            self._rng = random.Random(seed)  # noqa: S311 - fault injection, not security
            self.checked = 0
            self.injected: dict[str, int] = {}

    def decide(self, service: str, operation: str, function: str = "") -> str | None:
        """`before`, `after` or None (let it through) for one request of a function (its
        app id)."""
        with self._lock:
            if not self.rate or service not in self.services:
                return None
            if self.operations is not None and operation not in self.operations:
                return None
            if self.functions is not None and function not in self.functions:
                return None
            self.checked += 1
            if self._rng.random() >= self.rate:
                return None
            when = self.mode if self.mode != "both" else self._rng.choice(("before", "after"))
            key = f"{service}.{operation}.{when}"
            self.injected[key] = self.injected.get(key, 0) + 1
            return when

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "failRate": self.rate,
                "services": sorted(self.services),
                "operations": sorted(self.operations) if self.operations is not None else None,
                "functions": sorted(f.removeprefix(APP_ID_PREFIX) for f in self.functions)
                if self.functions is not None
                else None,
                "mode": self.mode,
                "seed": self.seed,
                "checked": self.checked,
                "injected": dict(sorted(self.injected.items())),
                "total": sum(self.injected.values()),
            }


class StreamFaults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configure(None)

    def configure(self, config: Any) -> None:
        config = _section(config, "streams", {"replayRate", "seed"})
        rate = _rate(config.get("replayRate", 0.0), "streams.replayRate")
        seed = _seed(config.get("seed"))
        with self._lock:
            self.rate, self.seed = rate, seed
            self._rng = random.Random(seed)  # noqa: S311 - fault injection, not security
            self.replayed = 0

    def replay(self) -> bool:
        with self._lock:
            if not self.rate or self._rng.random() >= self.rate:
                return False
            self.replayed += 1
            return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"replayRate": self.rate, "seed": self.seed, "replayed": self.replayed}


AWS_FAULTS = AwsFaults()
STREAM_FAULTS = StreamFaults()

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class FaultyApp:
    """WSGI middleware in front of moto's app: fails the functions' requests as told."""

    def __init__(self, app: WsgiApp, faults: AwsFaults = AWS_FAULTS) -> None:
        self.app = app
        self.faults = faults

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        decision = self._decision(environ)
        if decision is None:
            return self.app(environ, start_response)
        if decision == "after":
            # The request happens; its answer is lost on the way back.
            result = self.app(environ, lambda *_args, **_kw: lambda _data: None)
            try:
                for _ in result:
                    pass
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        body = json.dumps(
            {"__type": "InternalServerError", "message": f"injected by devserver ({decision})"}
        ).encode()
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))],
        )
        return [body]

    def _decision(self, environ: dict[str, Any]) -> str | None:
        found = re.search(rf"app/({APP_ID_PREFIX}\S+)", environ.get("HTTP_USER_AGENT", ""))
        if found is None:
            return None
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        for service, prefix in SERVICES.items():
            if target.startswith(prefix):
                return self.faults.decide(service, target.rsplit(".", 1)[-1], found.group(1))
        return None


def list_moto_modules_once() -> None:
    """moto's dispatcher finds a request's service by asking whether the request's host
    is the name of one of moto's packages: ``list_of_moto_modules()`` lists moto's folder
    and stats its ~170 entries, on every request, under the dispatcher's lock (measured:
    0.66 ms of CPU per request, an eighth of a DynamoDB call's). The folder does not
    change while the server runs: list it once."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "_switchboard_once", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules._switchboard_once = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules


def name_handler_methods_once() -> None:
    """moto looks up whether a request's action is a method of the service's response
    class with ``inspect.getmembers`` over the whole class, on every request; the classes
    do not change: look each up once."""
    from moto.core import responses

    module: Any = responses  # moto's own import of the helper, replaced where it is used
    if getattr(module.method_names_from_class, "_switchboard_once", False):
        return
    method_names_from_class = module.method_names_from_class
    known: dict[object, frozenset[str]] = {}

    def once(clazz: object) -> frozenset[str]:
        names = known.get(clazz)
        if names is None:
            names = known[clazz] = frozenset(method_names_from_class(clazz))
        return names

    once._switchboard_once = True  # type: ignore[attr-defined]
    module.method_names_from_class = once


def moto_server(host: str) -> Any:
    """moto's ThreadedMotoServer with FaultyApp and the effect log in front of its WSGI app,
    and in front of all, LocalOnlyApp (no other site's page)."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from devserver.effects import RecordingApp
    from devserver.local_only import LocalOnlyApp

    list_moto_modules_once()
    name_handler_methods_once()

    class FaultInjectingMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            # Faults first: a request failed `before` never reaches moto, so it is no effect.
            # Before them, another site's page is refused (local_only.py).
            app = LocalOnlyApp(
                FaultyApp(RecordingApp(DomainDispatcherApplication(create_backend_app)))
            )
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return FaultInjectingMotoServer(ip_address=host, port=0, verbose=False)
