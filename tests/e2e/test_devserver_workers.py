"""A function whose environment dies before it is ready (a handler module that exits or
crashes at import: not an exception, which the worker reports as Lambda's init error).

Lambda answers the invocation that needed the environment with an error; the devserver
did not: the invocation waited for a worker forever, the failed start retried itself
every second for ever, and each invocation that arrived while a retry slept started one
more such loop, so the pool went past ``--workers`` and kept growing. And a worker killed
while idle was handed the next invocation, which failed at once. The pool itself, on real
worker processes (no moto needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devserver.template import FunctionSpec
from devserver.workers import FunctionPool, function_environment

SIZE = 2


def _function(tmp_path: Path, name: str, source: str) -> FunctionSpec:
    """A function whose module ``name`` has ``source`` (before its handler)."""
    (tmp_path / f"{name}.py").write_text(
        source + "def handler(event, context):\n    return event\n"
    )
    return FunctionSpec(
        logical_id=f"{name.title()}Function",
        name=name,
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        code_uri=tmp_path,
        handler=f"{name}.handler",
        timeout=5.0,
        memory_size=128,
        environment={},
        layer_paths=[],
    )


def _dying_function(tmp_path: Path) -> FunctionSpec:
    return _function(
        tmp_path,
        "dies",
        "import os, sys\n"
        "sys.stdout.flush()\n"
        "os._exit(3)  # dies at import, before the worker says it is ready\n",
    )


async def test_a_worker_that_dies_at_import_fails_the_invocation_and_the_pool_stays_bounded(
    tmp_path: Path,
) -> None:
    spec = _dying_function(tmp_path)
    pool = FunctionPool(spec, function_environment(spec, "http://127.0.0.1:9"), SIZE)
    sizes: list[int] = []

    async def watch() -> None:  # the pool's size at every turn of the event loop
        while True:
            sizes.append(len(pool._workers))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        # When invocations come in waves, each while the previous starts failed
        for _ in range(4):
            # Then each invocation is answered (an error, as Lambda's), none waits for ever
            results = await asyncio.wait_for(
                asyncio.gather(*(pool.invoke({"n": n}) for n in range(3))), 30
            )
            assert [r.ok for r in results] == [False] * 3, results
            assert all("Runtime.ExitError" in r.error_message for r in results), results
        # And the pool never held more than its size, and starts nothing by itself once
        # its failed starts have ended (a new start only for a new invocation)
        await asyncio.wait_for(asyncio.gather(*list(pool._tasks)), 30)
        assert sizes and max(sizes) <= SIZE, max(sizes)
        assert not pool._tasks and not pool._workers, (pool._tasks, pool._workers)
    finally:
        watcher.cancel()
        await asyncio.wait_for(pool.close(), 30)


async def test_an_invocation_waiting_for_a_start_is_answered_when_the_devserver_closes(
    tmp_path: Path,
) -> None:
    """Closing while a worker starts (Ctrl-C during a cold start): the start is stopped,
    and the invocation waiting for it used to wait for ever."""
    spec = _function(
        tmp_path,
        "slow",
        "import time\ntime.sleep(2)  # a long cold start: the devserver closes meanwhile\n",
    )
    pool = FunctionPool(spec, function_environment(spec, "http://127.0.0.1:9"), SIZE)
    # Given an invocation waiting for the worker it started
    waiting = asyncio.create_task(pool.invoke({}))
    while pool.stats()["starting"] == 0:
        await asyncio.sleep(0)
    # When the pool closes before the worker is ready
    await asyncio.wait_for(pool.close(), 30)
    # Then the invocation is answered (an error), and no worker is left
    result = await asyncio.wait_for(waiting, 5)
    assert not result.ok and "shutting down" in result.error_message, result
    assert not pool._workers
    # ... as is one that comes after the close, without starting any
    late = await asyncio.wait_for(pool.invoke({}), 5)
    assert not late.ok and not pool._workers and not pool._tasks


async def test_a_worker_killed_while_idle_is_never_handed_an_invocation(tmp_path: Path) -> None:
    # Lambda never gives an invocation to an environment that died between invocations
    # (a dead one asks for none): the devserver gave it one, which failed at once with
    # Runtime.ExitError (seen in the chaos test, whose killer SIGKILLs workers).
    spec = _function(tmp_path, "echo", "")
    pool = FunctionPool(spec, function_environment(spec, "http://127.0.0.1:9"), 1)
    try:
        first = await asyncio.wait_for(pool.invoke({"n": 1}), 30)
        assert first.ok and first.payload == {"n": 1}, first
        (idle,) = pool._workers
        assert idle.process is not None
        idle.process.kill()
        await asyncio.wait_for(idle.process.wait(), 10)  # dead, still in the idle queue
        second = await asyncio.wait_for(pool.invoke({"n": 2}), 30)
        assert second.ok and second.payload == {"n": 2}, second
        assert second.pid != first.pid  # served by the worker that replaced it
    finally:
        await asyncio.wait_for(pool.close(), 30)
