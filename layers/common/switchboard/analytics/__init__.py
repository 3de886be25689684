"""Analytics: exact metrics aggregated from DynamoDB Streams (never from the hot path).

- ``histogram``: fixed logarithmic latency buckets and percentiles from them;
- ``periods``: minute/hour bucket keys;
- ``records``: stream record -> ``Contribution`` (what one change adds), one handler per
  source table (calls and uploads plug in the same way);
- ``aggregator``: applies contributions exactly once (see dal/metrics.py);
- ``report``: the read side behind the analytics HTTP API;
- ``queue_depths``: SQS depth / in-flight / DLQ depth on request.
"""
