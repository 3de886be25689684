"""One Lambda execution environment: a process that runs ONE function's handler.

Started by devserver.workers as `python -I -u devserver/worker.py ...` (isolated mode: no
PYTHONPATH, no script folder on sys.path), so the handler sees only what Lambda would
give it: its CodeUri folder, its layers (as /opt/python would be) and the runtime's
site-packages. This file therefore imports the standard library only, never `devserver`.

The IPC channel is an inherited socket fd (length-prefixed JSON), NOT stdout/stderr:
those belong to the handler (Powertools JSON logs, EMF metrics) and are streamed to the
devserver console. One invocation at a time, like a Lambda execution environment.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

_HEADER = struct.Struct("!I")


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def recv_message(sock: socket.socket) -> dict[str, Any] | None:
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, _HEADER.unpack(header)[0])
    if body is None:
        return None
    message: dict[str, Any] = json.loads(body)
    return message


class LambdaContext:
    """The attributes and method the Python runtime's context object has."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name: str = request["functionName"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = request["arn"]
        self.memory_limit_in_mb: int = int(request["memory"])
        self.aws_request_id: str = request["requestId"]
        self.log_group_name: str = request["logGroup"]
        self.log_stream_name: str = request["logStream"]
        self.identity = None
        self.client_context = None
        self._deadline_ms: int = int(request["deadlineMs"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _is_authorizer_refusal(exc: Exception) -> bool:
    """``raise Exception("Unauthorized")`` is a Lambda authorizer's way to say 401, not a
    failure: the devserver logs the refusal in one line, without this traceback."""
    return type(exc) is Exception and exc.args == ("Unauthorized",)


def _load_handler(spec: str) -> Callable[[Any, Any], Any]:
    module_name, _, func_name = spec.rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, func_name)
    if not callable(handler):
        raise TypeError(f"{spec} is not callable")
    return handler  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--handler", required=True)
    parser.add_argument("--path", action="append", default=[])
    args = parser.parse_args()

    # CodeUri first, then layers: the same precedence as /var/task before /opt/python.
    sys.path[:0] = args.path
    os.chdir(args.path[0])  # Lambda's cwd is /var/task
    sock = socket.socket(fileno=args.fd)

    # Init phase (cold start): import the handler module once, outside any invocation.
    started = time.monotonic()
    handler: Callable[[Any, Any], Any] | None = None
    init_error: dict[str, Any] | None = None
    try:
        handler = _load_handler(args.handler)
    except Exception as exc:
        init_error = _error(exc)
        traceback.print_exc()
    send_message(
        sock,
        {
            "type": "ready",
            "pid": os.getpid(),
            "initMs": round((time.monotonic() - started) * 1000, 1),
            "initError": init_error,
        },
    )

    while True:
        request = recv_message(sock)
        if request is None:  # the devserver went away
            return 0
        if handler is None:
            # Lambda retries the init phase on the next invocation after an init error.
            try:
                handler = _load_handler(args.handler)
            except Exception as exc:
                traceback.print_exc()
                send_message(
                    sock, {"type": "result", "ok": False, "error": _error(exc), "init": True}
                )
                continue
        response: dict[str, Any]
        try:
            result = handler(request["event"], LambdaContext(request))
            # Lambda serialises the return value to JSON; what cannot be is an error.
            json.dumps(result)
            response = {"type": "result", "ok": True, "result": result}
        except Exception as exc:
            if not _is_authorizer_refusal(exc):
                traceback.print_exc()
            response = {"type": "result", "ok": False, "error": _error(exc)}
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            send_message(sock, response)
        except TypeError as exc:
            send_message(sock, {"type": "result", "ok": False, "error": _error(exc)})


if __name__ == "__main__":
    sys.exit(main())
