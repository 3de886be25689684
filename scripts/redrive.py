"""Redrive one dead-letter queue in one command: its messages go back to the queue they
came from (after the cause is fixed), with SQS's own message-move task.

    python scripts/redrive.py DeliveryDLQ --stack switchboard-dev     # a deployed stack
    python scripts/redrive.py https://sqs.../switchboard-dev-DeliveryDLQ-XYZ
    AWS_ENDPOINT_URL=http://127.0.0.1:<moto> python scripts/redrive.py DeliveryDLQ   # devserver
    make redrive DLQ=DeliveryDLQ [STACK=switchboard-dev]

On AWS it calls StartMessageMoveTask (no destination: SQS returns each message to its
source queue) and follows ListMessageMoveTasks until the task ends. Emulators that lack
the move task (moto 5.2 answers it with a 500) get a faithful fallback, used only when an
endpoint URL points boto3 at an emulator, never against AWS: the messages that were in
the DLQ when the redrive started are received, sent to the DLQ's one source queue with
their body and message attributes, and deleted from the DLQ only once sent (a failure
leaves them in the DLQ; at least once, like the move task).

Only queue DLQs can be redriven. ConnectionEventsDLQ, SearchIndexDLQ and AnalyticsDLQ hold
stream batch descriptions (no queue sends to them): the command refuses them and points to
`make replay` (scripts/replay.py). Exit status: 0 done, 1 the task failed, 2 refused.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

LOCAL_STACK = "switchboard-local"  # the devserver's physical names: <stack>-<LogicalId>
_UNSUPPORTED = {"500", "501", "InvalidAction", "UnknownOperationException", "NotImplemented"}


class Refused(Exception):
    """Not a queue DLQ (or not one this command can redrive): nothing was moved."""


def queue_url(sqs: Any, target: str, stack: str | None) -> str:
    if target.startswith(("https://", "http://")):
        return target
    if stack:
        cfn = boto3.client("cloudformation")
        resource = cfn.describe_stack_resource(StackName=stack, LogicalResourceId=target)
        return str(resource["StackResourceDetail"]["PhysicalResourceId"])
    return str(sqs.get_queue_url(QueueName=f"{LOCAL_STACK}-{target}")["QueueUrl"])


def _depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def redrive(sqs: Any, dlq_url: str, *, emulator: bool, wait: bool = True) -> dict[str, Any]:
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", [])
    if not sources:
        raise Refused(
            f"{dlq_url} is no queue's dead-letter queue: it holds stream batch descriptions "
            "(replay them with `make replay`, see docs/operations.md)"
        )
    arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    try:
        handle = sqs.start_message_move_task(SourceArn=arn)["TaskHandle"]
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if not emulator or code not in _UNSUPPORTED:
            raise
        return _move_by_hand(sqs, dlq_url, sources)
    if not wait:
        return {"method": "StartMessageMoveTask", "taskHandle": handle, "status": "RUNNING"}
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=arn, MaxResults=1)["Results"]
        task = tasks[0] if tasks else {}
        if task.get("Status") in ("COMPLETED", "CANCELLED", "FAILED"):
            return {
                "method": "StartMessageMoveTask",
                "status": task["Status"],
                "moved": int(task.get("ApproximateNumberOfMessagesMoved", 0)),
                "failureReason": task.get("FailureReason"),
            }
        time.sleep(2)


def _move_by_hand(sqs: Any, dlq_url: str, sources: list[str]) -> dict[str, Any]:
    if len(sources) != 1:
        # SQS returns each message to the queue it came from; an emulator does not record
        # that, so several sources cannot be told apart (every Switchboard DLQ has one).
        raise Refused(f"{dlq_url} is the DLQ of {len(sources)} queues; cannot tell them apart")
    source = sources[0]
    # Like the move task: the messages there now, not those that fail again meanwhile.
    budget = _depth(sqs, dlq_url)
    moved = 0
    while moved < budget:
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, budget - moved),
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            request: dict[str, Any] = {"QueueUrl": source, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                request["MessageAttributes"] = message["MessageAttributes"]
            sqs.send_message(**request)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return {"method": "receive-send-delete (emulator)", "status": "COMPLETED", "moved": moved}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python scripts/redrive.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("dlq", help="the DLQ's logical id (DeliveryDLQ, ...) or its queue URL")
    p.add_argument("--stack", default=os.environ.get("STACK"), help="deployed stack name")
    p.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--no-wait", action="store_true", help="start the task, do not follow it")
    args = p.parse_args(argv)
    sqs = boto3.client("sqs", endpoint_url=args.endpoint_url)
    try:
        url = queue_url(sqs, args.dlq, args.stack)
        result = redrive(sqs, url, emulator=bool(args.endpoint_url), wait=not args.no_wait)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(f"{url}: {result}")
    return 0 if result["status"] in ("COMPLETED", "RUNNING") else 1


if __name__ == "__main__":
    sys.exit(main())
