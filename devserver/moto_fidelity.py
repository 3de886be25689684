"""Makes moto's DynamoDB as atomic as the real one.

DynamoDB evaluates a condition expression and applies the write atomically, and runs a
TransactWriteItems serialisably. moto's server handles requests on several threads with
no lock around check-then-write, so two concurrent conditional writes can both pass
(seen here: two sends of one conversation both got seq 5). Switchboard's gapless seq
relies on that atomicity, as every optimistic-concurrency design on DynamoDB does, so the
local stack serialises moto's DynamoDB writes with one lock.

And patches for speed, answering exactly as before: a table Query reads only its
partition, and the answers of the item reads (GetItem, Query, Scan, BatchGetItem) are
written as JSON directly instead of through moto's shape-driven serialiser, and an
UpdateExpression is parsed once per text.
"""

from __future__ import annotations

import base64
import functools
import json
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
    make_transactions_cheap()
    make_queries_read_one_partition()
    make_item_reads_serialise_fast()
    parse_update_expressions_once()


def parse_update_expressions_once() -> None:
    """moto parses an UpdateExpression from its text on every UpdateItem, twice for each
    Update of a transaction (once to validate the request, once to apply it): a send's
    6-item transaction and the aggregator's counters parsed the same few expressions over
    and over (measured: a fifth of the transaction's time in moto). The parsed tree is
    never modified (moto's validator works on a deep copy of it), so one tree per
    expression text serves every request."""
    from moto.dynamodb.parsing import expressions

    parser: Any = expressions.UpdateExpressionParser  # type: ignore[attr-defined]
    if getattr(parser.make, "_switchboard_cached", False):
        return
    parse = parser.make

    @functools.lru_cache(maxsize=4096)
    def make(expression: str) -> Any:
        return parse(expression)

    make._switchboard_cached = True  # type: ignore[attr-defined]
    parser.make = make


def write_lock() -> threading.RLock:
    """The lock every DynamoDB write holds: a reader that takes it never sees a
    transaction half applied (devserver/streams.py reads stream records under it)."""
    return _lock


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    wrapper._switchboard_atomic = True  # type: ignore[attr-defined]
    return wrapper


def make_transactions_cheap() -> None:
    """moto's TransactWriteItems deep-copies every table it touches (items AND stream
    records) to be able to roll back: each send costs O(everything stored), so the local
    stack slows down and grows by gigabytes as data accumulates (measured: 60 % of the
    devserver's CPU after ~1,000 messages). This version evaluates every condition first
    (DynamoDB's all-or-nothing semantics), writes only when all pass, and, should a write
    still fail, restores just the touched items and their stream records. It relies on the
    write lock of make_dynamodb_writes_atomic (applied on top of it)."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.transact_write_items, "_switchboard_cheap", False):
        return
    original = DynamoDBBackend.transact_write_items
    _STOCK["transact_write_items"] = getattr(original, "__wrapped__", original)
    cheap = _cheap_transact_write_items
    cheap._switchboard_cheap = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = _locked(cheap)  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items._switchboard_cheap = True  # type: ignore[attr-defined]


# moto's own TransactWriteItems, kept for tests/unit/test_moto_fidelity.py to compare with.
_STOCK: dict[str, Callable[..., Any]] = {}


def stock_transact_write_items() -> Callable[..., Any]:
    """moto's unpatched ``DynamoDBBackend.transact_write_items`` (patching first if needed)."""
    make_transactions_cheap()
    return _STOCK["transact_write_items"]


_partition = threading.local()


def make_queries_read_one_partition() -> None:
    """moto's Query on a table (no index) walks every item of the table and keeps those of
    the partition asked for: each Query costs O(table), where DynamoDB's costs O(the page
    read). A big table (the search index after 100,000 messages) made every Query slow, and
    a search makes several. This makes a table Query walk only its partition: the same
    items, found by the key they are stored under, handed over in sort-key order (moto
    sorts them again, in one pass)."""
    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "_switchboard_partition", False):
        return
    original_query, original_all_items = Table.query, Table.all_items

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)
        hash_key = kwargs.get("hash_key", args[0] if args else None)
        if index_name or hash_key is None:
            return original_query(self, *args, **kwargs)
        _partition.key = (self, hash_key)
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _partition.key = None

    def all_items(self: Any) -> Any:
        key = getattr(_partition, "key", None)
        if key is None or key[0] is not self:
            return original_all_items(self)
        stored = self.items.get(key[1])  # .get: the defaultdict must not grow
        if stored is None:
            return []
        if not self.range_key_attr:
            return [stored]
        # In sort-key order already (by the plain value: the same order as DynamoType's,
        # many times faster), so moto's own sort afterwards is one linear pass.
        return sorted(stored.values(), key=lambda item: item.range_key.cast_value)

    query._switchboard_partition = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]


# The item reads, and what their answers may hold: anything else goes to moto's serialiser.
_FAST_READS = {
    "GetItem": {"Item", "ConsumedCapacity"},
    "Query": {"Items", "Count", "ScannedCount", "LastEvaluatedKey", "ConsumedCapacity"},
    "Scan": {"Items", "Count", "ScannedCount", "LastEvaluatedKey", "ConsumedCapacity"},
    "BatchGetItem": {"Responses", "UnprocessedKeys", "ConsumedCapacity"},
}


class _NotPlain(Exception):
    """A value the fast path does not write: moto's serialiser does."""


def make_item_reads_serialise_fast() -> None:
    """moto writes every answer by walking the operation's output shape, member by member
    and attribute value by attribute value (~70 Python calls an attribute): a Query of
    1,000 messages took 0.6 s unloaded and 2-3 s on a busy machine, where DynamoDB answers
    in tens of milliseconds, so the local stack's reads of long pages (a reconnect's
    backlog, a search's candidates) were mostly serialisation. The item reads' answers
    are items of attribute values, whose JSON is the values themselves (binaries as
    base64): those are written with json.dumps, and anything unexpected falls back to
    moto's serialiser (tests/unit/test_moto_fidelity.py compares the two)."""
    from moto.dynamodb.responses import DynamoResult

    if getattr(DynamoResult.execute_result, "_switchboard_fast", False):
        return
    original = DynamoResult.execute_result
    _STOCK["execute_result"] = original

    def execute_result(self: Any, context: Any) -> Any:
        allowed = _FAST_READS.get(context.operation_model.name)
        if allowed is not None and isinstance(self.result, dict) and set(self.result) <= allowed:
            try:
                body = json.dumps(_plain_answer(self.result))
            except _NotPlain:
                pass
            else:
                content_type = "application/x-amz-json-" + context.service_model.metadata.get(
                    "jsonVersion", "1.0"
                )
                return 200, {"Content-Type": content_type}, body
        return original(self, context)

    execute_result._switchboard_fast = True  # type: ignore[attr-defined]
    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]


def stock_item_reads() -> Callable[..., Any]:
    """moto's own ``DynamoResult.execute_result`` (patching first if needed)."""
    make_item_reads_serialise_fast()
    return _STOCK["execute_result"]


def _plain_answer(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key in ("Item", "LastEvaluatedKey"):
            out[key] = _item(value)
        elif key == "Items":
            out[key] = [_item(i) for i in value]
        elif key == "Responses":
            out[key] = {table: [_item(i) for i in found] for table, found in value.items()}
        elif key == "UnprocessedKeys":
            if value:
                raise _NotPlain(key)  # keys with their projections: moto's serialiser
            out[key] = {}
        elif key in ("Count", "ScannedCount"):
            if type(value) is not int:
                raise _NotPlain(key)
            out[key] = value
        else:  # ConsumedCapacity: names and numbers
            out[key] = _json_data(value)
    return out


def _item(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _NotPlain(type(item).__name__)
    return {str(name): _attribute_value(value) for name, value in item.items()}


def _attribute_value(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) != 1:
        raise _NotPlain(repr(value)[:40])
    [(kind, content)] = value.items()
    write = _WRITERS.get(kind)
    if write is None:
        raise _NotPlain(kind)
    return {kind: write(content)}


def _of(kind: type) -> Callable[[Any], Any]:
    def check(content: Any) -> Any:
        if not isinstance(content, kind):
            raise _NotPlain(kind.__name__)
        return content

    return check


def _strings(content: Any) -> list[str]:
    return [_of(str)(v) for v in content]


def _base64(value: Any) -> str:
    if not isinstance(value, bytes):
        raise _NotPlain("binary")
    return base64.b64encode(value).decode()


# An attribute value's JSON by its type (DynamoDB API Reference, AttributeValue).
_WRITERS: dict[str, Callable[[Any], Any]] = {
    "S": _of(str),
    "N": _of(str),
    "BOOL": _of(bool),
    "NULL": _of(bool),
    "B": _base64,
    "SS": _strings,
    "NS": _strings,
    "BS": lambda content: [_base64(v) for v in content],
    "M": _item,
    "L": lambda content: [_attribute_value(v) for v in content],
}


def _json_data(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_data(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise _NotPlain(type(value).__name__)


Step = tuple[str, dict[str, Any], str, dict[str, Any]]  # op type, op, table, key


def _cheap_transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.exceptions import TooManyTransactionsException

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    steps = _check_all(self, transact_items)
    # Every condition holds and nothing can interleave (the write lock): apply.
    backups: list[tuple[Any, Any, Any, Any]] = []
    streams: dict[str, tuple[Any, int]] = {}
    try:
        for step in steps:
            _apply(self, step, backups, streams)
    except Exception:
        _restore(backups, streams)
        raise


def _check_all(self: Any, transact_items: list[dict[str, Any]]) -> list[Step]:
    """Evaluates every item's condition on the current state; raises the cancellation
    (with a reason per item, as DynamoDB does) if any fails. Writes nothing."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MultipleTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    targets: set[tuple[str, str]] = set()
    steps: list[Step] = []
    errors: list[tuple[Any, Any, Any]] = []
    for entry in transact_items:
        if len(entry) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(entry.items()))
        if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
            errors.append(("ValueError", "Unsupported transaction operation", None))
            continue
        table_name = op["TableName"]
        table = self.get_table(table_name)
        key = op.get("Key") or {
            a: op["Item"][a] for a in (table.hash_key_attr, table.range_key_attr) if a is not None
        }
        marker = (str(table_name), str(dict(sorted(key.items()))))
        if marker in targets:
            raise MultipleTransactionsException()
        targets.add(marker)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition is not None and not get_filter_expression(
            condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current):
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            errors.append(("ConditionalCheckFailed", str(ConditionalCheckFailed().message), old))
            continue
        errors.append((None, None, None))
        steps.append((op_type, op, table_name, key))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    return steps


def _apply(
    self: Any,
    step: Step,
    backups: list[tuple[Any, Any, Any, Any]],
    streams: dict[str, tuple[Any, int]],
) -> None:
    import copy

    from moto.dynamodb.models.dynamo_type import DynamoType

    op_type, op, table_name, key = step
    if op_type == "ConditionCheck":
        return
    table = self.get_table(table_name)
    if table.stream_shard is not None and table_name not in streams:
        streams[table_name] = (table.stream_shard, len(table.stream_shard.items))
    range_attr = table.range_key_attr
    backups.append(
        (
            table,
            DynamoType(key[table.hash_key_attr]),
            DynamoType(key[range_attr]) if range_attr is not None else None,
            copy.deepcopy(self.get_item(table_name, key)),
        )
    )
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if op_type == "Put":
        self.put_item(
            table_name,
            op["Item"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )
    elif op_type == "Delete":
        self.delete_item(table_name, key)
    else:
        self.update_item(
            table_name,
            key,
            update_expression=op["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _restore(backups: list[tuple[Any, Any, Any, Any]], streams: dict[str, tuple[Any, int]]) -> None:
    """Undoes a partly applied transaction: the touched items and their stream records."""
    for table, hash_value, range_value, previous in reversed(backups):
        bucket = table.items
        key_value = hash_value
        if range_value is not None:
            bucket = table.items.setdefault(hash_value, {})
            key_value = range_value
        if previous is None:
            bucket.pop(key_value, None)
        else:
            bucket[key_value] = previous
    for shard, length in streams.values():
        del shard.items[length:]
