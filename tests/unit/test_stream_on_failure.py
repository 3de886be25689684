"""The devserver's stream mapping hands a batch to its on-failure destination exactly when
Lambda does: after 1 + MaximumRetryAttempts failed invocations, the records not yet
processed, one record per bisected half; never for a batch that succeeded."""

from __future__ import annotations

import asyncio
from typing import Any

from devserver.event_sources import EventSources
from devserver.workers import InvocationResult
from tests.unit.test_stream_failures import SPEC


class Pools:
    """Invocations of a function that fails on the records ``failing`` (by sequence)."""

    def __init__(self, failing: set[str], *, partial: bool) -> None:
        self.failing, self.partial = failing, partial
        self.invocations = 0

    async def invoke(self, _logical_id: str, event: dict[str, Any]) -> InvocationResult:
        self.invocations += 1
        seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        bad = [s for s in seqs if s in self.failing]
        if not bad:
            return InvocationResult(True, payload={"batchItemFailures": []})
        if self.partial:
            return InvocationResult(
                True, payload={"batchItemFailures": [{"itemIdentifier": bad[0]}]}
            )
        return InvocationResult(False, error={"errorType": "Boom", "errorMessage": "x"})


def batch(*seqs: str) -> list[dict[str, Any]]:
    return [{"dynamodb": {"SequenceNumber": s}} for s in seqs]


def deliver(
    pools: Pools, records: list[dict[str, Any]], *, bisect: bool, partial: bool
) -> list[Any]:
    sent: list[Any] = []

    async def on_failure(
        skipped: list[dict[str, Any]], attempts: int, result: InvocationResult
    ) -> None:
        sent.append(([r["dynamodb"]["SequenceNumber"] for r in skipped], attempts, result.ok))

    async def run() -> None:
        sources = EventSources([], pools, "")  # type: ignore[arg-type]
        await sources._deliver_stream_batch(SPEC, "t", records, 2, bisect, partial, on_failure)

    asyncio.run(run())
    return sent


def test_a_reported_failure_sends_the_records_from_it_on_after_the_last_retry() -> None:
    pools = Pools({"3"}, partial=True)
    sent = deliver(pools, batch("1", "2", "3", "4"), bisect=True, partial=True)
    assert sent == [(["3", "4"], 3, True)]  # 1 + MaximumRetryAttempts (2) invocations
    assert pools.invocations == 3


def test_a_bisected_batch_sends_one_record_per_failing_half() -> None:
    pools = Pools({"1", "4"}, partial=False)
    sent = deliver(pools, batch("1", "2", "3", "4"), bisect=True, partial=False)
    assert [seqs for seqs, _, _ in sent] == [["1"], ["4"]]
    assert all(not ok for _, _, ok in sent)


def test_a_batch_that_succeeds_sends_nothing() -> None:
    pools = Pools(set(), partial=True)
    assert deliver(pools, batch("1", "2"), bisect=True, partial=True) == []
    assert pools.invocations == 1
