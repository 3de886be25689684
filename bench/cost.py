"""Figure 6 - the cost model: dollars per million messages and per 10,000 concurrent
users per month, from the AWS calls the bench counted and AWS's public price list, side by
side with the AWS sample chat app's design (a Scan of the connections table per message).

Request units are estimated from the counted calls and the items each touched: every item
Switchboard reads is under 4 KB and every item it writes under 1 KB, so a read costs one
read request unit (as if strongly consistent: an upper bound), a write one write request
unit, and a transactional write two (DynamoDB's rule for transactions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

PRICES_DATE = "2026-11-26"
PRICE_SOURCES = {
    "API Gateway (WebSocket APIs)": "https://aws.amazon.com/api-gateway/pricing/",
    "Lambda (arm64)": "https://aws.amazon.com/lambda/pricing/",
    "DynamoDB (on-demand)": "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    "SQS (standard)": "https://aws.amazon.com/sqs/pricing/",
}


@dataclass(frozen=True)
class Prices:
    """us-east-1 list prices, first tier, no free tier."""

    websocket_message_per_million: float = 1.00  # per 32 KB, sent or received
    connection_minute_per_million: float = 0.25
    lambda_request_per_million: float = 0.20
    lambda_gb_second: float = 0.0000133334  # arm64, as the template deploys
    read_unit_per_million: float = 0.125  # on-demand, since the 2024-11-01 reduction
    write_unit_per_million: float = 0.625
    sqs_request_per_million: float = 0.40


READ_OPERATIONS = {"GetItem", "Query", "BatchGetItem", "Scan"}
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


def request_units(calls: Mapping[str, int], items: Mapping[str, int]) -> tuple[float, float]:
    """(read units, write units) of the counted DynamoDB calls (see the module doc)."""
    read = write = 0.0
    for key, count in calls.items():
        service, _, operation = key.partition(".")
        if service != "dynamodb":
            continue
        touched = items.get(key, count)
        if operation in READ_OPERATIONS:
            read += touched
        elif operation == "TransactGetItems":
            read += 2 * touched
        elif operation in WRITE_OPERATIONS:
            write += touched
        elif operation == "TransactWriteItems":
            write += 2 * touched
    return read, write


@dataclass(frozen=True)
class Operation:
    """What one operation costs in billed units."""

    websocket_messages: float = 0
    lambda_invocations: float = 0
    lambda_ms: float = 0  # billed duration per invocation (1 ms granularity)
    memory_mb: int = 512
    read_units: float = 0
    write_units: float = 0
    sqs_requests: float = 0

    def dollars(self, prices: Prices) -> float:
        gb_seconds = self.lambda_invocations * self.lambda_ms / 1000 * self.memory_mb / 1024
        return (
            self.websocket_messages * prices.websocket_message_per_million / 1e6
            + self.lambda_invocations * prices.lambda_request_per_million / 1e6
            + gb_seconds * prices.lambda_gb_second
            + self.read_units * prices.read_unit_per_million / 1e6
            + self.write_units * prices.write_unit_per_million / 1e6
            + self.sqs_requests * prices.sqs_request_per_million / 1e6
        )


def scan_read_units(connected: int, item_bytes: int) -> float:
    """Read units of an eventually consistent Scan of a table of ``connected`` items:
    half a unit per 4 KB read, the size summed over each (up to 1 MB) page."""
    total = connected * item_bytes
    pages = max(1, math.ceil(total / 1_048_576))
    units = 0.0
    for page in range(pages):
        size = min(1_048_576, total - page * 1_048_576)
        units += 0.5 * math.ceil(max(size, 1) / 4096)
    return units


@dataclass(frozen=True)
class Assumptions:
    lambda_ms: float = 40  # billed duration of one request-path invocation
    memory_mb: int = 512  # the template's MemorySize
    connection_item_bytes: int = 200  # a Connections item (id, user, times, device)
    keepalive_minutes: float = 4  # both clients: a keepalive after 240 s without sending
    max_connection_hours: float = 2  # API Gateway closes every connection after 2 h
    hours_per_month: float = 730


def send_operation(counted: Mapping[str, Any], a: Assumptions) -> Operation:
    """A 1:1 send: the sender's frame in, its reply out, one push per recipient device."""
    return Operation(
        websocket_messages=2 + counted["posts"],
        lambda_invocations=counted["invocations"],
        lambda_ms=a.lambda_ms,
        memory_mb=a.memory_mb,
        read_units=counted["read_units"],
        write_units=counted["write_units"],
        sqs_requests=counted["sqs"],
    )


def scan_design(
    send: Operation, presence_read_units: float, connected: int, a: Assumptions
) -> Operation:
    """The same send with the recipients' connections found by a Scan of the connections
    table (the AWS sample chat app's `sendmessage`) instead of the presence BatchGetItem.
    Lambda time is kept equal, which favours the Scan design."""
    return Operation(
        **{
            **asdict(send),
            "read_units": send.read_units
            - presence_read_units
            + scan_read_units(connected, a.connection_item_bytes),
        }
    )


def indexing_operation(indexing: Mapping[str, Any], a: Assumptions) -> Operation:
    """Indexing one 1:1 message for search (bench.search counted it): the indexer's
    writes and its share of a stream invocation (batches of up to 100 messages)."""
    one = indexing["members_2"]
    return Operation(
        lambda_invocations=0.01,
        lambda_ms=a.lambda_ms * 4,
        memory_mb=a.memory_mb,
        read_units=one["read_units_per_message"],
        write_units=one["write_units_per_message"],
    )


def model(
    operations: Mapping[str, Mapping[str, Any]],
    users: tuple[int, ...] = (1_000, 10_000, 100_000),
    prices: Prices | None = None,
    a: Assumptions | None = None,
    curve: tuple[int, ...] = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000),
    indexing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``indexing`` (bench.search's index cost): the all-in cost of a message then includes
    indexing it for search (``switchboard_with_search``)."""
    prices, a = prices or Prices(), a or Assumptions()
    counted = operations["send_1to1_online"]
    send = send_operation(counted, a)
    presence_units = float(counted["items"].get("dynamodb.BatchGetItem", 0))
    index = indexing_operation(indexing, a) if indexing else None

    def at(connected: int) -> dict[str, float]:
        scan = scan_design(send, presence_units, connected, a)
        figures = {
            "switchboard": round(send.dollars(prices) * 1e6, 2),
            "scan_design": round(scan.dollars(prices) * 1e6, 2),
        }
        if index is not None:
            both = (send.dollars(prices) + index.dollars(prices)) * 1e6
            figures["switchboard_with_search"] = round(both, 2)
        return figures

    return {
        "prices": asdict(prices),
        "prices_date": PRICES_DATE,
        "price_sources": PRICE_SOURCES,
        "assumptions": asdict(a),
        "send_operation": asdict(send),
        "indexing_operation": asdict(index) if index else None,
        "per_million_messages": {str(n): at(n) for n in users},
        "curve": {str(n): at(n) for n in curve},
        "per_10k_users_month": connected_users_month(operations, 10_000, prices, a),
    }


def connected_users_month(
    operations: Mapping[str, Mapping[str, Any]], users: int, prices: Prices, a: Assumptions
) -> dict[str, float]:
    """What ``users`` always-connected users cost in a month without sending anything:
    connection minutes, keep-alives, and a reconnect every 2 hours (authorizer,
    $connect, $disconnect)."""
    minutes = users * a.hours_per_month * 60
    pings = minutes / a.keepalive_minutes
    reconnects = users * a.hours_per_month / a.max_connection_hours
    ping = operations["ping"]
    ping_cost = Operation(
        websocket_messages=2,
        lambda_invocations=1,
        lambda_ms=a.lambda_ms / 4,
        memory_mb=a.memory_mb,
        read_units=ping["read_units"],
        write_units=ping["write_units"],
    )
    connect, disconnect = operations["connect"], operations["disconnect"]
    reconnect = Operation(
        lambda_invocations=connect["invocations"] + disconnect["invocations"],
        lambda_ms=a.lambda_ms,
        memory_mb=a.memory_mb,
        read_units=connect["read_units"] + disconnect["read_units"],
        write_units=connect["write_units"] + disconnect["write_units"],
    )
    # The bundled clients' keep-alive is the `keepalive` route, which API Gateway answers
    # itself (a MOCK integration with a route response): only its two WebSocket messages
    # are billed. A `ping` (answered by a Lambda) adds the request and its time; it is
    # kept beside for comparison.
    parts = {
        "connection_minutes": minutes * prices.connection_minute_per_million / 1e6,
        "keepalives": pings * 2 * prices.websocket_message_per_million / 1e6,
        "reconnects": reconnects * reconnect.dollars(prices),
    }
    parts["total"] = sum(parts.values())
    parts["keepalives_as_lambda_pings"] = pings * ping_cost.dollars(prices)
    parts["total_with_lambda_pings"] = (
        parts["connection_minutes"] + parts["keepalives_as_lambda_pings"] + parts["reconnects"]
    )
    return {key: round(value, 2) for key, value in parts.items()}


def all_in(
    measured: Mapping[str, Any], prices: Prices | None = None, a: Assumptions | None = None
) -> dict[str, Any]:
    """Dollars per million 1:1 messages to an online recipient counting everything a send
    sets off (bench.allin's counts), per AWS service and per part (the request path, each
    stream or queue consumer). The request path's Lambda time is the model's assumption
    (``lambda_ms``: in-process durations on a shared machine are not Lambda's); a
    consumer's is its measured in-process duration per invocation (a batch), which is an
    upper bound and a small part either way."""
    prices, a = prices or Prices(), a or Assumptions()
    messages = measured["messages"]
    parts: dict[str, dict[str, float]] = {}
    for side in ("request", "triggered"):
        for function, f in measured[side]["functions"].items():
            calls = f["calls"]
            posts = calls.get("apigatewaymanagementapi.PostToConnection", 0) / messages
            invocations = f["invocations"] / messages
            is_request = side == "request"
            ms = a.lambda_ms if is_request else f["billed_ms_per_invocation"]
            memory = f["memory_mb"] or a.memory_mb
            gb_seconds = invocations * ms / 1000 * memory / 1024
            sqs = sum(n for k, n in calls.items() if k.startswith("sqs.")) / messages
            name = "request path" if is_request else function
            parts[name] = {
                # the sender's frame in and its reply out, then every push
                "API Gateway": ((2 if is_request else 0) + posts)
                * prices.websocket_message_per_million,
                "Lambda": invocations * prices.lambda_request_per_million
                + gb_seconds * prices.lambda_gb_second * 1e6,
                "DynamoDB": f["read_units_per_message"] * prices.read_unit_per_million
                + f["write_units_per_message"] * prices.write_unit_per_million,
                "SQS": sqs * prices.sqs_request_per_million,
            }
    services = ("API Gateway", "Lambda", "DynamoDB", "SQS")
    by_service = {s: round(sum(p[s] for p in parts.values()), 3) for s in services}
    by_part = {name: round(sum(p.values()), 3) for name, p in parts.items()}
    total = sum(sum(p.values()) for p in parts.values())
    search = sum(sum(p.values()) for name, p in parts.items() if "Search" in name)
    return {
        "per_million": round(total, 2),
        "per_million_without_search": round(total - search, 2),
        "by_service": by_service,
        "by_part": by_part,
        "parts": {name: {s: round(v, 3) for s, v in p.items()} for name, p in parts.items()},
        "write_units_per_message": {
            name: measured[side]["functions"][fn]["write_units_per_message"]
            for side in ("request", "triggered")
            for fn in measured[side]["functions"]
            for name in [("request path" if side == "request" else fn)]
        },
        "messages": messages,
    }
