"""Lambda's Invoke API on the devserver's HTTP port, so that operator tools written for AWS
(`scripts/replay.py`) run unchanged against it: boto3's Lambda client pointed at the
devserver (`AWS_ENDPOINT_URL_LAMBDA=<devserver http URL>`) invokes a template function
in its worker pool.

`POST /2015-03-31/functions/{FunctionName}/invocations`: the name is the function's
logical id, its local name or its ARN (a qualifier is ignored: there is only $LATEST).
Only `RequestResponse` is emulated (what the tools use); the answer is Lambda's: 200 with
the function's result, or with its error payload and `X-Amz-Function-Error: Unhandled`.
"""

from __future__ import annotations

import json

from aiohttp import web

from devserver.template import FunctionSpec
from devserver.workers import WorkerPools

__all__ = ["add_lambda_routes"]

PATH = "/2015-03-31/functions/{name}/invocations"


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"Type": "User", "message": message},
        status=status,
        headers={"x-amzn-ErrorType": error_type},
    )


def _find(functions: list[FunctionSpec], name: str) -> FunctionSpec | None:
    if name.startswith("arn:"):
        # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        parts = name.split(":")
        name = parts[6] if len(parts) > 6 else ""
    for spec in functions:
        if name in (spec.logical_id, spec.name):
            return spec
    return None


def add_lambda_routes(
    app: web.Application, functions: list[FunctionSpec], pools: WorkerPools
) -> None:
    async def invoke(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        spec = _find(functions, name)
        if spec is None:
            return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind != "RequestResponse":
            return _error(
                400, "InvalidParameterValueException", f"{kind} invocations are not emulated"
            )
        raw = await request.read()
        try:
            event = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "InvalidRequestContentException", "the body is not JSON")
        result = await pools.invoke(spec.logical_id, event)
        headers = {"X-Amz-Executed-Version": "$LATEST", "X-Amz-Request-Id": result.request_id}
        if not result.ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
            return web.json_response(result.error, headers=headers)
        return web.json_response(result.payload, headers=headers)

    app.router.add_post(PATH, invoke)
