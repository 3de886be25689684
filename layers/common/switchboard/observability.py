"""Powertools logger and metrics shared by every function (module-level, as Powertools
recommends). Tracer is deliberately absent: it imports the X-Ray SDK (~0.5 s of cold
start here) and Lambda's active tracing already records each invocation."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
