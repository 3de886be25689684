"""DynamoDB Streams for the event-source mappings, read from the embedded moto in-process.

Lambda's event-source mapping is AWS's own machinery, not a caller of the public API, and
so is this one: it reads a table's stream records straight from moto's backend (the moto
server runs in the devserver's process) instead of through GetRecords over HTTP. What a
function receives is the same - every record, in stream order, Lambda-shaped by
devserver/event_sources.py - but the cost is not: through HTTP each poll went through
botocore's request serialisation, moto's generic response serialiser (slow for records
with item images: measured at 30 % of the devserver's CPU during a message burst) and
botocore's parser again, and nine shard pollers four times a second kept a core a quarter
busy while nothing happened.

A mapping also no longer polls an idle shard: moto's ``StreamShard.add`` is wrapped to
wake the readers of that table's stream when a record is appended (``watch``), so a new
record is picked up at once and an idle stream costs nothing.

Reads take moto_fidelity's DynamoDB write lock: a transaction that appends stream
records and then rolls back (devserver/moto_fidelity.py) is never seen half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devserver.moto_fidelity import write_lock

__all__ = ["ShardCursor", "StreamReader", "watch_stream_appends"]

_watch_lock = threading.Lock()
# table name -> callbacks run (on moto's request thread) after a record is appended
_watchers: dict[tuple[str, str, str], set[Callable[[], None]]] = {}


def watch_stream_appends() -> None:
    """Wraps moto's ``StreamShard.add`` (once) to call the watchers of the table."""
    from moto.dynamodb.models.table import StreamShard

    if getattr(StreamShard.add, "_switchboard_watched", False):
        return
    original = StreamShard.add

    def add(self: Any, old: Any, new: Any) -> None:
        original(self, old, new)
        table = self.table
        with _watch_lock:
            callbacks = list(_watchers.get((self.account_id, table.region_name, table.name), ()))
        for callback in callbacks:
            callback()

    add._switchboard_watched = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]


@dataclass
class ShardCursor:
    """A position in one shard: the next record to read is ``shard.items[index]``."""

    shard: Any
    index: int


class StreamReader:
    """One table's stream, by its ARN (``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/
    stream/LABEL``), for one mapping."""

    def __init__(self, stream_arn: str) -> None:
        parts = stream_arn.split(":", 5)
        self.region, self.account = parts[3], parts[4]
        self.table_name = parts[5].split("/")[1]
        self._key = (self.account, self.region, self.table_name)
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        with _watch_lock:
            _watchers.setdefault(self._key, set()).add(self._on_append)

    def close(self) -> None:
        with _watch_lock:
            _watchers.get(self._key, set()).discard(self._on_append)

    def _on_append(self) -> None:  # on moto's request thread
        # A write must not fail because the devserver is shutting down (loop closed).
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._wake.set)

    def _shard(self) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[self.account][self.region].get_table(self.table_name)
        if table.stream_shard is None:
            raise LookupError(f"table {self.table_name} has no stream")
        return table.stream_shard

    def shard_id(self) -> str:
        return str(self._shard().id)

    def cursor(self, position: str) -> ShardCursor:
        """TRIM_HORIZON: from the oldest record; LATEST: only records added from now on."""
        with write_lock():
            shard = self._shard()
            return ShardCursor(shard, len(shard.items) if position == "LATEST" else 0)

    def read(self, cursor: ShardCursor, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` records after the cursor (moto's wire-shaped records, not to be
        modified), and moves it past them. A stream replaced since (the table's stream
        turned off and on) is read from its start."""
        self._wake.clear()  # a record appended after this read wakes the next wait
        with write_lock():
            shard = self._shard()
            if shard is not cursor.shard:
                cursor.shard, cursor.index = shard, 0
            records = shard.items[cursor.index : cursor.index + limit]
            cursor.index += len(records)
            return [record.to_json() for record in records]

    async def wait(self, timeout: float) -> None:
        """Until a record is appended after the last read, or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
