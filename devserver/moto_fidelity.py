"""Makes moto's DynamoDB as atomic as the real one.

DynamoDB evaluates a condition expression and applies the write atomically, and runs a
TransactWriteItems serialisably. moto's server handles requests on several threads with
no lock around check-then-write, so two concurrent conditional writes can both pass
(seen here: two sends of one conversation both got seq 5). Switchboard's gapless seq
relies on that atomicity, as every optimistic-concurrency design on DynamoDB does, so the
local stack serialises moto's DynamoDB writes with one lock.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def make_dynamodb_writes_atomic() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_switchboard_atomic", False):
            continue
        setattr(DynamoDBBackend, name, _locked(original))


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    wrapper._switchboard_atomic = True  # type: ignore[attr-defined]
    return wrapper
