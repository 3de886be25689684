"""The quick bench's cheap parts, run for real: AWS calls counted on the in-process
stack, the fan-out through gateway.ManagementApi against the latency server, one cold
start, and the cost model and table built from them. Structure and counts only: never
wall-clock assertions."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest

from bench import ROOT, allin, calls, coldstart, cost, fanout, search
from tests.integration.conftest import Stack


@pytest.fixture(scope="module")
def counted(stack: Stack) -> dict[str, Any]:
    return calls.measure(stack, crowd=3, group_sizes=(3, 5), quiet=False)


def test_counted_calls_meet_the_goals(counted: dict[str, Any]) -> None:
    operations = counted["operations"]
    assert counted["ddb_calls_per_message"] == operations["send_1to1_online"]["dynamodb"] <= 3
    assert counted["scan_calls"] == 0
    # A 1:1 send to an online recipient: one post; to an offline one: a notification job
    assert operations["send_1to1_online"]["posts"] == 1
    assert operations["send_1to1_online"]["sqs"] == 0
    assert operations["send_1to1_offline"]["posts"] == 0
    assert operations["send_1to1_offline"]["sqs"] >= 1
    # Group sends: one post per other member, and the DynamoDB calls do not grow
    assert operations["send_group_3"]["posts"] == 2
    assert operations["send_group_5"]["posts"] == 4
    assert operations["send_group_5"]["dynamodb"] == operations["send_group_3"]["dynamodb"]
    assert operations["connect"]["dynamodb"] >= 1
    assert operations["ping"]["invocations"] == 1
    # Call setup rings the callee (a push) and answers back to the caller (another)
    assert operations["call_setup"]["posts"] >= 2
    assert operations["upload_start"]["dynamodb"] >= 1
    # Edit, reaction, delete, thread reply and quote-reply: each like a send (3 calls, one
    # push to the other member)
    for name in (
        "message_edit",
        "message_react",
        "message_delete",
        "send_thread_reply",
        "send_quote",
    ):
        assert operations[name]["dynamodb"] <= 3, (name, operations[name])
        assert operations[name]["posts"] == 1, (name, operations[name])


def test_cost_model_and_table_from_counted_calls(counted: dict[str, Any]) -> None:
    model = cost.model(counted["operations"])
    per_message = model["per_million_messages"]
    # The Scan design's cost grows with connected users; Switchboard's does not
    assert per_message["1000"]["switchboard"] == per_message["100000"]["switchboard"]
    assert per_message["100000"]["scan_design"] > per_message["1000"]["scan_design"]
    assert per_message["1000"]["scan_design"] > per_message["1000"]["switchboard"]
    assert (
        model["per_10k_users_month"]["total"] > model["per_10k_users_month"]["connection_minutes"]
    )


def test_all_in_counts_what_a_send_sets_off(stack: Stack) -> None:
    measured = allin.measure(stack, pairs=2, per_pair=3)
    assert measured["messages"] == 6
    request, triggered = measured["request"], measured["triggered"]
    # The request path: per send one GetItem, one presence BatchGetItem, one transaction of
    # 7 items (12 write units for its 6 writes, and the recipient's block-list ConditionCheck,
    # which the cost model prices as a transactional write too: 2 units, an over-estimate
    # by 2 WCU for 2 RCU), the byActivity index's upkeep (both member items move in it: a
    # delete and a put each, 4 write units) and one push to the online recipient
    assert request["calls"]["dynamodb.TransactWriteItems"] == 6
    assert request["items"]["dynamodb.TransactWriteItems"] == 42
    assert request["functions"]["MessageFunction"]["index_write_units_per_message"] == 4
    assert request["write_units_per_message"] == 14 + 4
    assert request["posts_per_message"] == 1
    # What it set off, drained through the template's consumers: the 6 message records in
    # one aggregator batch are counted in ONE transaction (6 markers + the minute and hour
    # buckets, the total, the 2 senders' stats: 11 items, or 12 across a minute boundary)
    aggregator = triggered["functions"]["AggregatorFunction"]
    assert aggregator["calls"] == {"dynamodb.TransactWriteItems": 1}
    assert 11 * 2 / 6 <= aggregator["write_units_per_message"] <= 13 * 2 / 6
    # The search indexer wrote one document per scope (the conversation's, each member's:
    # 3 write units per 1:1 message, in one BatchWriteItem for the batch, after one
    # BatchGetItem of the members), nothing else queued or pushed
    indexer = triggered["functions"]["SearchIndexerFunction"]
    assert indexer["write_units_per_message"] == 3
    assert indexer["calls"] == {"dynamodb.BatchGetItem": 1, "dynamodb.BatchWriteItem": 1}
    assert triggered["posts_per_message"] == 0
    assert triggered["sqs_per_message"] == 0
    assert measured["records"]["switchboard-local-MessagesTable -> AggregatorFunction"] == 6
    money = cost.all_in(measured)
    assert set(money["by_part"]) == {"request path", "AggregatorFunction", "SearchIndexerFunction"}
    assert money["per_million"] == pytest.approx(sum(money["by_part"].values()), abs=0.01)


def test_fan_out_reaches_every_connection_through_the_gateway() -> None:
    result = fanout.measure([10, 40], sequential_posts=5, delay_ms=5, concurrency=8)
    assert [p["delivered"] for p in result["curve"]] == [10, 40]
    assert result["concurrency"] == 8
    assert "fanout_40_speedup" in result


def test_one_cold_start_is_measured_in_a_fresh_process() -> None:
    template = coldstart.load_template(ROOT)
    subject = next(s for s in coldstart.subjects(template) if s.name == "ConnectionFunction")
    wall, cpu = coldstart.time_import(subject)
    assert wall > 0 and cpu > 0
    assert min(coldstart.time_import(subject, coldstart.BASELINE)) > 0
    assert "ConnectionFunction" in coldstart.websocket_functions(template)


def test_the_cold_start_floor_imports_what_every_function_uses() -> None:
    # The floor row is the baseline plus the packages every function imports: a floor that
    # skipped them would be the baseline under another name.
    subject = coldstart.subjects(coldstart.load_template(ROOT))[0]
    child = [sys.executable, "-I", "-X", "importtime", "-c", coldstart._CHILD]
    traced = subprocess.run(
        [*child, "\x1f".join(subject.paths), coldstart.FLOOR],
        env=subject.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines()}
    assert {"boto3", "pydantic._internal._model_construction"} <= imported
    assert "aws_lambda_powertools.logging.logger" in imported
    assert not any(name.startswith("switchboard") for name in imported)


def test_import_and_first_request_are_measured_against_the_stack(stack: Stack) -> None:
    # The second cold-start figure: a fresh process imports the message function and
    # sends one message (a failed request would raise, not count as a cheaper sample).
    events = coldstart.FirstRequests(stack, lambda _: None).events()
    assert set(events) == coldstart.websocket_functions(stack.template)
    subject = next(
        replace(s, env={**s.env, **coldstart._stack_env(stack, s.name)})
        for s in coldstart.subjects(stack.template)
        if s.name == "MessageFunction"
    )
    measured = coldstart.time_first_request(subject, events["MessageFunction"])
    assert measured["total_ms"] > measured["import_ms"] > 0
    baseline = coldstart.time_first_request(
        subject, {"table": stack.table("UsersTable")}, coldstart.BASELINE
    )
    assert baseline["total_ms"] > baseline["import_ms"] > 0
    refused = {**events["MessageFunction"], "body": "{}"}  # answered bad_request
    with pytest.raises(RuntimeError, match="the first request failed"):
        coldstart.time_first_request(subject, refused)


def test_search_costs_are_counted_from_the_real_indexer_and_handler(stack: Stack) -> None:
    measured = search.costs(stack, samples={2: 12, 10: 4, 50: 2}, corpus_messages=60)
    index = measured["index_cost"]
    # One document per scope: the conversation's and each member's, one write unit each
    # (a chat message's document is well under 1 KB: no more than one unit per scope)
    for size, scopes in (("members_2", 3), ("members_10", 11), ("members_50", 51)):
        counted = index[size]
        assert counted["write_units_per_message"] == scopes, size
        assert counted["document_bytes_max"] < 1024, size
        # and the indexer's calls: BatchWriteItems of 25, one BatchGetItem of members
        assert counted["calls"]["dynamodb.BatchGetItem"] == 1, size
    for name, query in measured["search_calls"].items():
        assert query["scans"] == 0, name
        assert query["calls"] <= 6, (name, query)
        assert 0 < query["read_units"] <= 4 * 128 + 50, (name, query)
        assert query["by_operation"]["dynamodb.UpdateItem"] == 1, name  # the rate limit
    assert measured["search_calls"]["common word"]["hits"] > 0
