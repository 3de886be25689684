"""A stand-in for API Gateway's management API that answers every
``POST /@connections/{id}`` after a fixed injected latency (and counts the posts), so
fan-out is measured against a slow network without touching one. Runs in its own process
(``python -m bench.latency_server --delay-ms 20``) so it never competes with the client
for the GIL; it prints its port once listening on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def make_app(delay_seconds: float) -> web.Application:
    app = web.Application()
    posts = {"count": 0}

    async def post(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(delay_seconds)
        posts["count"] += 1
        return web.Response(status=200)

    async def count(_: web.Request) -> web.Response:
        return web.json_response(posts)

    async def reset(_: web.Request) -> web.Response:
        posts["count"] = 0
        return web.json_response(posts)

    app.router.add_post("/@connections/{connection_id}", post)
    app.router.add_get("/__posts", count)
    app.router.add_delete("/__posts", reset)
    return app


async def serve(delay_seconds: float) -> None:
    runner = web.AppRunner(make_app(delay_seconds), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(serve(args.delay_ms / 1000))


if __name__ == "__main__":
    main()
