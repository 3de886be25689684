"""CloudWatch's embedded metric format, as CloudWatch Logs applies it: a function's log
line that is an EMF document (a JSON object with ``_aws.CloudWatchMetrics``) becomes
metric data. Lambda sends function output to CloudWatch Logs, which extracts them; here
the workers' output goes through ``EmfSink.offer`` and the metrics are put into moto's
CloudWatch, so what reads CloudWatch locally (the analytics API's queue processing
figures) sees what it would see on AWS. Puts are batched off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from devserver.provision import aws_client

__all__ = ["EmfSink", "metric_data"]

log = logging.getLogger("devserver.emf")
FLUSH_SECONDS = 1.0
MAX_PER_PUT = 500  # PutMetricData takes 1,000 metrics a call


def metric_data(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, MetricDatum) for every metric an EMF document declares."""
    aws = document.get("_aws") or {}
    timestamp = datetime.fromtimestamp(int(aws.get("Timestamp", 0)) / 1000, UTC)
    found: list[tuple[str, dict[str, Any]]] = []
    for directive in aws.get("CloudWatchMetrics") or []:
        namespace = str(directive.get("Namespace", ""))
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = [
                {"Name": name, "Value": str(document[name])}
                for name in dimension_set
                if name in document
            ]
            for metric in directive.get("Metrics") or []:
                name = metric.get("Name")
                raw = document.get(name)
                values = raw if isinstance(raw, list) else [raw]
                numbers = [float(v) for v in values if isinstance(v, (int, float))]
                if not name or not numbers:
                    continue
                datum: dict[str, Any] = {
                    "MetricName": name,
                    "Dimensions": dimensions,
                    "Timestamp": timestamp,
                    "Values": numbers,
                }
                if metric.get("Unit"):
                    datum["Unit"] = metric["Unit"]
                found.append((namespace, datum))
    return found


class EmfSink:
    def __init__(self, moto_url: str) -> None:
        self.moto_url = moto_url
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def offer(self, line: str) -> None:
        if not line.startswith("{") or '"_aws"' not in line:
            return
        try:
            document = json.loads(line)
        except ValueError:
            return
        if isinstance(document, dict):
            with self._lock:
                self._pending.extend(metric_data(document))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await asyncio.to_thread(self.flush)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for namespace, datum in pending:
            by_namespace.setdefault(namespace, []).append(datum)
        cloudwatch = aws_client("cloudwatch", self.moto_url) if by_namespace else None
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), MAX_PER_PUT):
                try:
                    assert cloudwatch is not None
                    cloudwatch.put_metric_data(
                        Namespace=namespace, MetricData=data[start : start + MAX_PER_PUT]
                    )
                except Exception as exc:
                    log.warning("EMF metrics not stored: %r", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.flush)
