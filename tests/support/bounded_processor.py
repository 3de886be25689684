"""The upload processor in a process of its own, under a memory and CPU budget.

``python -m tests.support.bounded_processor MEMORY_MIB CPU_SECONDS`` (with the function's
environment, boto3 aimed at a moto server): imports the processor, then limits its
address space (RLIMIT_AS) to what it uses once imported plus ``MEMORY_MIB``, and its CPU
time (RLIMIT_CPU: the kernel kills it past ``CPU_SECONDS``), then drains the upload
events queue as the SQS mapping would (records processed, failed ones left) and prints
every batch response as JSON. A test that gets no JSON back knows the budget was broken.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
from typing import Any

# Thread stacks are address space too: the fan-out pool's threads get small ones.
threading.stack_size(512 * 1024)

from functions.upload import processor  # noqa: E402 - after the stack size, before the limits
from tests.support.events import upload_event_records  # noqa: E402


class Context:
    function_name = "processor"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:processor"
    aws_request_id = "bounded"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def main(memory_mib: int, cpu_seconds: int) -> None:
    import boto3

    sqs = boto3.client("sqs")
    url = os.environ["UPLOAD_EVENTS_QUEUE_URL"]
    sqs.get_queue_attributes(QueueUrl=url)  # connections and credentials set up first
    limit = _address_space() + memory_mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    responses: list[dict[str, Any]] = []
    for _ in range(20):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        records = upload_event_records(messages)
        response = processor.lambda_handler({"Records": records}, Context())
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        responses.append({**response, "records": len(records)})
    print(json.dumps({"responses": responses, "limit": limit}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
