"""The in-process stack the call counts run on: the handlers imported with their
template environment, against an embedded moto server provisioned from template.yaml by
the devserver's own code (what tests/integration/conftest.py's `stack` fixture does)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from tests.integration.conftest import Stack
from tests.integration.conftest import local_stack as _local_stack


@contextmanager
def local_stack() -> Iterator[Stack]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    with _local_stack(POWERTOOLS_LOG_LEVEL="WARNING") as stack:
        yield stack
