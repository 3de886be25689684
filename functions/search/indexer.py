"""Messages table stream -> the search index (switchboard/search/indexer.py).

The batch is applied as a whole (its writes are idempotent): an error fails the batch,
which Lambda retries, bisects down to the failing record after repeated errors, and
finally hands to the on-failure destination (SearchIndexDLQ, alarmed)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from switchboard import services
from switchboard.config import SearchSettings
from switchboard.observability import logger

indexer = services.search_indexer(SearchSettings.from_env())


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = indexer.handle_records(event.get("Records") or [])
    logger.info(
        "index updated",
        extra={"changes": report.changes, "puts": report.puts, "deletes": report.deletes},
    )
    return {"batchItemFailures": []}
