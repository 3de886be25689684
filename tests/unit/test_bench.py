"""The bench's counting and maths (bench/): percentiles, AWS call counting through
botocore's hooks, request units, the cost model, cold-start ratios and the report, with
expected values worked out by hand in the comments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bench import ROOT, coldstart, cost, devstart, report
from bench.counting import CallCounter, counting, items_touched
from bench.stats import median, percentile, summary


# ---------------------------------------------------------------------- percentiles
def test_percentile_interpolates_between_closest_ranks() -> None:
    # [1, 2, 3, 4]: p50 has rank 0.5 * 3 = 1.5, halfway between 2 and 3
    assert percentile([4, 1, 3, 2], 50) == 2.5
    # [10..50]: p99 has rank 0.99 * 4 = 3.96 -> 40 + 0.96 * (50 - 40) = 49.6
    assert percentile([10, 20, 30, 40, 50], 99) == pytest.approx(49.6)
    # p95 of the same: rank 3.8 -> 40 + 0.8 * 10 = 48
    assert percentile([50, 40, 30, 20, 10], 95) == pytest.approx(48.0)
    assert percentile([7, 3, 5], 0) == 3
    assert percentile([7, 3, 5], 100) == 7
    assert percentile([42], 99) == 42
    assert median([5, 1, 3]) == 3


def test_percentile_refuses_what_has_no_answer() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1, 2], 101)


def test_summary() -> None:
    # mean of 1..5 is 3; p95 rank 3.8 -> 4.8; p99 rank 3.96 -> 4.96
    assert summary([5, 4, 3, 2, 1]) == {
        "count": 5,
        "min": 1,
        "p50": 3,
        "p95": 4.8,
        "p99": 4.96,
        "max": 5,
        "mean": 3,
    }


# ---------------------------------------------------------------------- counting
def test_items_touched_per_dynamodb_operation() -> None:
    assert items_touched("TransactWriteItems", {"TransactItems": [{}] * 5}) == 5
    two_tables = {"RequestItems": {"a": {"Keys": [{}, {}, {}]}, "b": {"Keys": [{}, {}]}}}
    assert items_touched("BatchGetItem", two_tables) == 5
    assert items_touched("BatchWriteItem", {"RequestItems": {"a": [{}] * 25}}) == 25
    assert items_touched("GetItem", {"Key": {}}) == 1
    assert items_touched("Query", {}) == 1


def _stubbed_dynamodb() -> Any:
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_call_counter_counts_calls_and_items_through_botocore_hooks() -> None:
    client = _stubbed_dynamodb()
    # The counter registers first, so it sees each call before the Stubber answers it.
    with counting([client]) as counter:
        stubber = Stubber(client)
        stubber.add_response("get_item", {})
        stubber.add_response("transact_write_items", {})
        stubber.add_response("get_item", {})
        key = {"pk": {"S": "a"}}
        items = [{"Put": {"TableName": "t", "Item": key}}] * 3
        with stubber:
            client.get_item(TableName="t", Key=key)
            client.transact_write_items(TransactItems=items)
            with counter.measure() as inner:
                client.get_item(TableName="t", Key=key)
    assert counter.snapshot() == {"dynamodb.GetItem": 2, "dynamodb.TransactWriteItems": 1}
    assert counter.items["dynamodb.TransactWriteItems"] == 3
    assert counter.service_calls("dynamodb") == 3
    assert counter.scans() == 0
    assert inner.snapshot() == {"dynamodb.GetItem": 1}  # only what ran inside the block


def test_call_counter_stops_counting_when_closed_and_counts_scans() -> None:
    client = _stubbed_dynamodb()
    counter = CallCounter().watch(client, client)  # watching twice counts once
    stubber = Stubber(client)
    stubber.add_response("scan", {})
    stubber.add_response("scan", {})
    with stubber:
        client.scan(TableName="t")
        counter.close()
        client.scan(TableName="t")
    assert counter.snapshot() == {"dynamodb.Scan": 1}
    assert counter.scans() == 1


def test_counting_every_client_sees_clients_made_inside_the_block_and_only_there() -> None:
    from bench.counting import counting_every_client

    before = _stubbed_dynamodb()
    with counting_every_client() as counter:
        during = _stubbed_dynamodb()  # a consumer's own client, created while counting
        for client in (before, during):
            stubber = Stubber(client)
            stubber.add_response("batch_write_item", {})
            with stubber:
                client.batch_write_item(
                    RequestItems={
                        "t": [{"PutRequest": {"Item": {"pk": {"S": str(i)}}}} for i in range(4)]
                    }
                )
    stubber = Stubber(before)
    stubber.add_response("get_item", {})
    with stubber:
        before.get_item(TableName="t", Key={"pk": {"S": "a"}})  # after the block: not counted
    assert counter.snapshot() == {"dynamodb.BatchWriteItem": 2}
    assert counter.items["dynamodb.BatchWriteItem"] == 8
    assert set(counter.ms) == {"dynamodb.BatchWriteItem"}


# ---------------------------------------------------------------------- cost model
def test_request_units_from_counted_calls() -> None:
    calls = {
        "dynamodb.GetItem": 1,
        "dynamodb.BatchGetItem": 1,
        "dynamodb.TransactWriteItems": 1,
        "dynamodb.UpdateItem": 2,
        "sqs.SendMessage": 1,
    }
    items = {
        "dynamodb.GetItem": 1,
        "dynamodb.BatchGetItem": 2,
        "dynamodb.TransactWriteItems": 5,
        "dynamodb.UpdateItem": 2,
    }
    # reads: 1 + 2 = 3; writes: 5 items x 2 (transaction) + 2 = 12; SQS is not DynamoDB
    assert cost.request_units(calls, items) == (3.0, 12.0)


def test_scan_read_units_grow_with_the_table() -> None:
    # 1,000 x 200 B = 200,000 B, one page: ceil(200,000 / 4,096) = 49 blocks x 0.5 = 24.5
    assert cost.scan_read_units(1_000, 200) == 24.5
    # 100,000 x 200 B = 20,000,000 B: 19 full 1 MiB pages of 256 blocks (128 units each)
    # = 2,432, and a last page of 20,000,000 - 19 x 1,048,576 = 77,056 B = 19 blocks = 9.5
    assert cost.scan_read_units(100_000, 200) == 2441.5
    assert cost.scan_read_units(0, 200) == 0.5  # an empty Scan still costs its minimum


def test_operation_dollars_from_the_price_list() -> None:
    send = cost.Operation(
        websocket_messages=3, lambda_invocations=1, lambda_ms=40, memory_mb=512,
        read_units=3, write_units=10,
    )  # fmt: skip
    # 3 messages 3e-6 + request 0.2e-6 + 0.04 s x 0.5 GB x 1.33334e-5 = 0.266668e-6
    # + 3 RRU x 0.125e-6 = 0.375e-6 + 10 WRU x 0.625e-6 = 6.25e-6  -> 10.091668e-6
    assert send.dollars(cost.Prices()) == pytest.approx(10.091668e-6)
    assert cost.Operation(sqs_requests=1).dollars(cost.Prices()) == pytest.approx(0.4e-6)


def _operations() -> dict[str, dict[str, Any]]:
    blank = {"calls": {}, "items": {}, "read_units": 0.0, "write_units": 0.0, "posts": 0, "sqs": 0}
    return {
        "send_1to1_online": {
            **blank,
            "calls": {"dynamodb.BatchGetItem": 1},
            "items": {"dynamodb.BatchGetItem": 2},
            "read_units": 3.0,
            "write_units": 10.0,
            "posts": 1,
            "invocations": 1,
        },
        "ping": {**blank, "invocations": 1},
        "connect": {**blank, "read_units": 1.0, "write_units": 4.0, "invocations": 2},
        "disconnect": {**blank, "write_units": 4.0, "invocations": 1},
    }


def test_cost_model_against_the_scan_design() -> None:
    model = cost.model(_operations(), users=(1_000, 100_000))
    per_message = model["per_million_messages"]
    # Switchboard: the send above, $10.09 per million whatever the number of users
    assert per_message["1000"]["switchboard"] == per_message["100000"]["switchboard"] == 10.09
    # Scan design: the 2 presence reads replaced by the Scan's units:
    # 1k users: 10.091668 + (24.5 - 2) x 0.125 = 12.904168 -> 12.90
    assert per_message["1000"]["scan_design"] == 12.9
    # 100k users: 10.091668 + (2441.5 - 2) x 0.125 = 315.029168 -> 315.03
    assert per_message["100000"]["scan_design"] == 315.03


def test_all_in_cost_per_service_and_part() -> None:
    def function(calls: dict[str, int], invocations: int, ms: float, ru: float, wu: float) -> Any:
        return {
            "calls": calls,
            "invocations": invocations,
            "billed_ms_per_invocation": ms,
            "memory_mb": 1024,
            "read_units_per_message": ru,
            "write_units_per_message": wu,
        }

    measured = {
        "messages": 10,
        "request": {
            "functions": {
                "MessageFunction": function(
                    {"apigatewaymanagementapi.PostToConnection": 10}, 10, 999, 3, 12
                )
            }
        },
        "triggered": {
            "functions": {
                "AggregatorFunction": function({}, 1, 100, 0, 2),
                "SearchIndexerFunction": function({"sqs.SendMessage": 1}, 1, 1000, 0.5, 40),
            }
        },
    }
    result = cost.all_in(measured)
    # request path: 3 messages ($3) + 1 request ($0.2) + 0.04 s x 1 GB x 1.33334e-5 x 1e6
    # ($0.533336: the model's 40 ms, not the 999 measured) + 3 RRU + 12 WRU ($0.375 + $7.5)
    assert result["by_part"]["request path"] == pytest.approx(11.608, abs=0.001)
    # aggregator: 0.1 request ($0.02) + 0.1 x 0.1 s x 1 GB ($0.1333) + 2 WRU ($1.25)
    assert result["by_part"]["AggregatorFunction"] == pytest.approx(1.403, abs=0.001)
    # indexer: $0.02 + 0.1 x 1 s x 1 GB ($1.3333) + 0.5 RRU ($0.0625) + 40 WRU ($25)
    # + 0.1 SQS request ($0.04)
    assert result["by_part"]["SearchIndexerFunction"] == pytest.approx(26.456, abs=0.001)
    assert result["per_million"] == pytest.approx(11.608 + 1.403 + 26.456, abs=0.01)
    assert result["per_million_without_search"] == pytest.approx(11.608 + 1.403, abs=0.01)
    assert result["by_service"]["API Gateway"] == 3.0
    assert result["by_service"]["SQS"] == pytest.approx(0.04)


def test_cost_of_ten_thousand_connected_users_a_month() -> None:
    month = cost.model(_operations())["per_10k_users_month"]
    # 10,000 users x 730 h x 60 = 438,000,000 connection minutes x $0.25 / million
    assert month["connection_minutes"] == 109.5
    # 438e6 / 4 = 109,500,000 keepalives (one per 4 idle minutes, as both clients do),
    # answered by API Gateway (MOCK): 2 messages x 1e-6 each = 219.00
    assert month["keepalives"] == 219.0
    # 10,000 x 730 / 2 = 3,650,000 reconnects x (3 requests 0.6e-6 + 3 x 0.04 s x 0.5 GB
    # x 1.33334e-5 = 0.800004e-6 + 1 RRU 0.125e-6 + 8 WRU 5e-6) = 23.817... -> 23.82
    assert month["reconnects"] == 23.82
    assert month["total"] == pytest.approx(109.5 + 219.0 + 23.82, abs=0.01)
    # The same keep-alives as `ping` requests a Lambda answers: x (2 messages 2e-6 +
    # request 0.2e-6 + 0.01 s x 0.5 GB x 1.33334e-5 = 0.066667e-6) = 248.200... -> 248.2
    assert month["keepalives_as_lambda_pings"] == 248.2
    assert month["total_with_lambda_pings"] == pytest.approx(109.5 + 248.2 + 23.82, abs=0.01)


# ---------------------------------------------------------------------- cold start
def test_coldstart_ratio_is_the_median_paired_ratio_of_the_worst_websocket_function() -> None:
    result = coldstart.summarise(
        {"Ws": [300, 200, 250], "Queue": [900, 800, 1000], "Other": [150, 120, 130]},
        {"Ws": [100, 200, 200], "Queue": [100, 100, 100], "Other": [100, 100, 100]},
        websocket={"Ws", "Other"},
    )
    # Ws: 300/100 = 3, 200/200 = 1, 250/200 = 1.25 -> median 1.25 (one loaded round of 3
    # does not decide it)
    assert result["functions"]["Ws"]["ratio"] == 1.25
    # Other: 1.5, 1.2, 1.3 -> 1.3
    assert result["functions"]["Other"]["ratio"] == 1.3
    # The queue consumer is far slower, but only WebSocket functions decide the headline
    assert result["functions"]["Queue"]["ratio"] == 9.0
    assert result["worst_websocket_function"] == "Other"
    assert result["coldstart_ratio"] == 1.3


def test_websocket_functions_come_from_the_template() -> None:
    found = coldstart.websocket_functions(coldstart.load_template(ROOT))
    assert {"AuthorizerFunction", "ConnectionFunction", "MessageFunction"} <= found
    assert "DeliveryRetryFunction" not in found  # an SQS consumer


# ---------------------------------------------------------------------- report
def test_goals_and_table() -> None:
    assert report.goal_met("coldstart_ratio", 1.3)
    assert not report.goal_met("coldstart_ratio", 1.31)
    assert report.goal_met("cost_per_million_all_in", 5.0)
    assert not report.goal_met("cost_per_million_all_in", 5.01)
    assert report.goal_met("scan_calls", 0) and not report.goal_met("scan_calls", 1)
    assert not report.goal_met("fanout_1000_speedup", 9.9)
    table = report.markdown_table([("a", "1")], ("Figure", "Value"))
    assert table.splitlines() == ["| Figure | Value |", "|---|---|", "| a | 1 |"]


def test_results_go_between_the_doc_markers_only(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Title\nprose\n{report.BEGIN}\nold\n{report.END}\nmore prose\n")
    report.write_into_doc(doc, "new table\n")
    assert (
        doc.read_text() == f"# Title\nprose\n{report.BEGIN}\nnew table\n{report.END}\nmore prose\n"
    )
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        report.write_into_doc(tmp_path / "plain.md", "x")


def test_plots_are_png_files(tmp_path: Path) -> None:
    results = {
        "e2e": {"latency_samples_ms": [10.0, 12.0, 30.0], "latency_ms": summary([10, 12, 30])},
        "fanout": {
            "delay_ms": 20,
            "curve": [
                {"connections": 10, "parallel_ms": 30.0, "sequential_ms": 220.0},
                {"connections": 100, "parallel_ms": 120.0, "sequential_ms": 2200.0},
            ],
        },
        "cost": {
            "per_million_messages": {
                "1000": {"switchboard": 10.0, "scan_design": 12.0},
                "100000": {"switchboard": 10.0, "scan_design": 300.0},
            }
        },
    }
    written = report.plot(results, tmp_path)
    assert len(written) == 3
    for path in written.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ index upkeep, item sizes
def _member(activity_at: int, acked: int) -> dict[str, Any]:
    return {
        "conversationId": {"S": "dm_1"},
        "sk": {"S": "member#alice"},
        "folder": {"S": "inbox#alice"},
        "activityAt": {"N": str(activity_at)},
        "ackedSeq": {"N": str(acked)},
    }


def _change(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    images = {"OldImage": old} if old else {}
    return {"dynamodb": images | ({"NewImage": new} if new else {})}


def test_index_upkeep_is_billed_as_dynamodb_keeps_a_secondary_index() -> None:
    from bench.allin import SecondaryIndex, index_write_units

    every = [SecondaryIndex(("folder", "activityAt"), None)]
    keys_only = [SecondaryIndex(("folder", "activityAt"), ("folder", "activityAt", "sk"))]
    # a send moves a member's activityAt (the index's sort key): a delete and a put
    assert index_write_units(_change(_member(1, 0), _member(2, 0)), every) == 2
    # an ack changes a projected attribute only: the index item is put again
    assert index_write_units(_change(_member(1, 0), _member(1, 5)), every) == 1
    assert index_write_units(_change(_member(1, 0), _member(1, 5)), keys_only) == 0
    # an item the sparse index does not hold (no folder) costs nothing there
    meta = {"conversationId": {"S": "dm_1"}, "sk": {"S": "#meta"}, "lastSeq": {"N": "3"}}
    assert index_write_units(_change(meta, meta | {"lastSeq": {"N": "4"}}), every) == 0
    assert index_write_units(_change(None, _member(1, 0)), every) == 1  # joins the index
    assert index_write_units(_change(_member(1, 0), None), every) == 1  # leaves it


def test_a_put_is_billed_per_started_kilobyte() -> None:
    from bench.counting import item_bytes, write_units

    small = {"pk": {"S": "u#alice"}, "d": {"S": "x" * 100}}
    assert item_bytes(small) == len("pk") + 7 + len("d") + 100
    assert write_units(small) == 1
    assert write_units({"pk": {"S": "u#alice"}, "d": {"S": "x" * 1100}}) == 2
    request = {
        "RequestItems": {
            "T": [
                {"PutRequest": {"Item": {"d": {"S": "x" * 3000}}}},
                {"DeleteRequest": {"Key": {"pk": {"S": "a"}}}},
            ]
        }
    }
    assert items_touched("BatchWriteItem", request) == 3 + 1


# ---------------------------------------------------------------------- backlog figure
def test_the_backlog_speedup_is_the_median_rounds() -> None:
    from bench.e2e import median_round

    def round_(ratio: float) -> tuple[float, dict[str, Any], dict[str, Any]]:
        return ratio, {"delivery_seconds": ratio}, {"delivery_seconds": 1.0}

    # 3 rounds: the middle ratio and that round's figures, whatever the order
    assert median_round([round_(17.6), round_(7.4), round_(13.4)]) == round_(13.4)
    # an even number: the lower of the middle two (never the luckier one)
    assert median_round([round_(2), round_(9), round_(4), round_(8)])[0] == 4
    assert median_round([round_(3)])[0] == 3


def test_the_backlog_alone_reports_its_goal_and_both_sides() -> None:
    side = {"messages": 1000, "frames": 7, "delivery_seconds": 0.8, "in_order": True}
    results = {
        "backlog_speedup": 13.39,
        "backlog": {
            "per_message": {**side, "batch": False, "frames": 1000, "delivery_seconds": 10.7},
            "batched": {**side, "batch": True},
        },
    }
    rows = report.backlog_rows(results)
    assert rows[0][1:] == ("13.39", ">= 5", "met")
    assert "one post per message (1,000 frames)" in rows[1][0]
    assert rows[1][1] == "10.70 s, in order"
    assert "message:batch frames (7 frames)" in rows[2][0]
    # In a full run the goal is in the goals' rows already: not twice
    assert len(report.backlog_rows({**results, "e2e": {}})) == 2


def test_cpu_per_message_splits_by_component_and_names_the_ceilings() -> None:
    """Figure 4's CPU accounting: ms per message from two snapshots (CPU seconds), parts
    that used nothing left out, the devserver process (one interpreter: one core at most)
    and everything (all cores) turned into the message rates they cap."""
    from bench import e2e

    before = {e2e.EVENT_LOOP: 1.0, e2e.MOTO: 10.0, "MessageFunction": 2.0, "SearchFunction": 1.0}
    after = {e2e.EVENT_LOOP: 1.2, e2e.MOTO: 12.0, "MessageFunction": 2.6, "SearchFunction": 1.0}
    cpu = e2e.cpu_per_message(before, after, 100)
    assert cpu["ms_per_message"] == {e2e.MOTO: 20.0, "MessageFunction": 6.0, e2e.EVENT_LOOP: 2.0}
    assert cpu["devserver_ms_per_message"] == 22.0
    assert cpu["total_ms_per_message"] == 28.0
    assert cpu["ceiling_msgs_per_s_devserver_process"] == round(1000 / 22, 1)
    assert cpu["ceiling_msgs_per_s_all_cores"] == round(cpu["cores"] * 1000 / 28, 1)
    rows = report.e2e_rows(
        {
            "devserver_msgs_per_s": 40.0,
            "e2e_p99_ms": 300.0,
            "load_connect_per_s": 25.0,
            "e2e": {
                "clients": 100,
                "offered_msgs_per_s": 12.0,
                "load_fraction": 0.3,
                "latency_ms": {"p50": 100.0, "p95": 200.0},
                "idle_users": {"users": 1000, "concurrency": 20},
                "cpu": cpu,
            },
        }
    )
    assert rows[0][-1] == "MISSED"  # the goal row: 40 < 100
    assert "22.0 / 28.0 ms" in rows[-1][1]
    assert e2e.cpu_per_message({}, after, 100) == {}


# ---------------------------------------------------------------------- devserver start
_BURNER = r"""
import subprocess, sys, time
if sys.argv[1:] == ["child"]:
    while time.process_time() < 0.3:  # 0.3 s of CPU in this child
        pass
    print("burnt", flush=True)
    time.sleep(60)
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], "child"], stdout=subprocess.PIPE)
assert child.stdout is not None and child.stdout.readline() == b"burnt\n"
print("ready", flush=True)
time.sleep(60)
"""


def test_devserver_start_cpu_is_the_process_and_the_processes_it_started() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _BURNER, _BURNER], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"ready\n"
        cpu, processes = devstart._tree_cpu_seconds(parent.pid)
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
    assert processes == 2  # the parent and the child it started, nothing else
    assert cpu >= 0.3  # the child's burn is counted


def test_devserver_start_rows_compare_both_starts() -> None:
    started = {
        "on_demand": {"ready_seconds": 2.0, "cpu_seconds": 1.9, "processes": 1},
        "prewarm": {"ready_seconds": 11.6, "cpu_seconds": 19.1, "processes": 31},
        "devserver_start_cpu_ratio": 10.05,
    }
    on_demand, prewarm = report.devstart_rows({"devstart": started})
    assert on_demand[1] == "ready in 2.0 s on 1.9 s of CPU, 1 processes"
    assert prewarm[1] == "ready in 11.6 s on 19.1 s of CPU, 31 processes (10.05x the CPU)"
    assert report.devstart_rows({}) == []  # results from before the figure existed
