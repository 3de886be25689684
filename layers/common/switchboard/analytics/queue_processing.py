"""Queue processing time and failure rate, from the consumers' own metrics.

Every SQS consumer's batch processor (switchboard/batch.py) publishes, per batch, EMF
metrics with the dimension ``QueueName``: records processed, records failed and each
record's processing time. One GetMetricData call reads them back for every queue over
a window (the last hour by default): processed, failed, ``failureRate = failed /
(processed + failed)`` (each failed receive counts: a record that fails three times and
then succeeds is 3 failures and 1 success) and the processing time (average, maximum,
count). Lambda's own Errors/Duration would miss per-record failures (partial batch
responses are not errors) and include the batch overhead."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from switchboard import aws
from switchboard.analytics.answers import Processing, ProcessingTime
from switchboard.observability import QUEUE_METRICS, logger

WINDOW_SECONDS = 3600
_STATS = (  # query id suffix, metric, statistic
    ("p", QUEUE_METRICS["processed"], "Sum"),
    ("f", QUEUE_METRICS["failed"], "Sum"),
    ("t", QUEUE_METRICS["time"], "Sum"),
    ("m", QUEUE_METRICS["time"], "Maximum"),
    ("n", QUEUE_METRICS["time"], "SampleCount"),
)


class QueueProcessing:
    def __init__(
        self,
        queues: Mapping[str, str],
        *,
        namespace: str,
        service: str = "",
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``queues``: label -> queue URL (the main queues: their consumers publish)."""
        self.queues = {label: url.rstrip("/").rsplit("/", 1)[-1] for label, url in queues.items()}
        self.namespace = namespace
        self.service = service
        self._client = client
        self._clock = clock

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.cloudwatch()
        return self._client

    def _queries(self) -> list[dict[str, Any]]:
        queries = []
        for i, (_label, name) in enumerate(sorted(self.queues.items())):
            dimensions = [{"Name": "QueueName", "Value": name}]
            if self.service:  # Powertools adds the service dimension to every metric
                dimensions.append({"Name": "service", "Value": self.service})
            for suffix, metric, stat in _STATS:
                queries.append(
                    {
                        "Id": f"q{i}{suffix}",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": self.namespace,
                                "MetricName": metric,
                                "Dimensions": dimensions,
                            },
                            "Period": WINDOW_SECONDS,
                            "Stat": stat,
                        },
                        "ReturnData": True,
                    }
                )
        return queries

    def snapshot(self, window_seconds: int = WINDOW_SECONDS) -> dict[str, Processing]:
        """label -> processing figures of the last ``window_seconds`` (unavailable: None)."""
        if not self.queues:
            return {}
        # The window ends at the next whole minute, not at "now": CloudWatch takes an
        # EndTime in the future, and a window cut at the current second (moto truncates
        # it to the second) would leave out a batch published a moment ago.
        now = self._clock()
        end = dt.datetime.fromtimestamp(math.floor(now / 60) * 60 + 60, dt.UTC)
        try:
            values: dict[str, list[float]] = {}
            request: dict[str, Any] = {
                "MetricDataQueries": self._queries(),
                "StartTime": end - dt.timedelta(seconds=window_seconds),
                "EndTime": end,
            }
            while True:
                response = self.client.get_metric_data(**request)
                for result in response.get("MetricDataResults", []):
                    # The window may span two periods: several values per query.
                    values.setdefault(result["Id"], []).extend(result.get("Values") or [])
                if not response.get("NextToken"):
                    break
                request["NextToken"] = response["NextToken"]
        except (ClientError, BotoCoreError) as exc:
            # Depths still answer when CloudWatch does not (nor does it turn into a 500).
            logger.warning("queue processing metrics unavailable", extra={"error": str(exc)})
            return {label: Processing(available=False) for label in self.queues}
        found: dict[str, Processing] = {}
        for i, (label, _name) in enumerate(sorted(self.queues.items())):
            processed = int(sum(values.get(f"q{i}p", [])))
            failed = int(sum(values.get(f"q{i}f", [])))
            samples = int(sum(values.get(f"q{i}n", [])))
            total_ms = sum(values.get(f"q{i}t", []))
            longest = max(values.get(f"q{i}m", []), default=0.0)
            found[label] = Processing(
                available=True,
                windowSeconds=window_seconds,
                processed=processed,
                failed=failed,
                failureRate=round(failed / (processed + failed), 4) if processed + failed else None,
                processingTimeMs=ProcessingTime(
                    count=samples,
                    average=round(total_ms / samples, 3) if samples else None,
                    max=round(longest, 3) if samples else None,
                ),
            )
        return found
