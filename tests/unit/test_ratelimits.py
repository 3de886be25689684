"""RateLimiter.consume on DynamoDB's answers (botocore Stubber: moto never answers 500)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from switchboard.dal.ratelimits import RateLimit, RateLimiter

RULE = RateLimit("upload#user#alice", 30, 60)
NOW_MS = 1_796_000_000_000


@pytest.fixture
def stubbed() -> tuple[RateLimiter, Stubber]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    return RateLimiter("RateLimits", client=client), Stubber(client)


@pytest.mark.parametrize(
    ("code", "status", "counted"),
    [
        ("ConditionalCheckFailedException", 400, False),  # the window is full
        ("InternalServerError", 500, True),  # every answer lost: the hit landed
    ],
)
def test_a_counter_answer_decides_or_counts(
    stubbed: tuple[RateLimiter, Stubber], code: str, status: int, counted: bool
) -> None:
    limiter, stubber = stubbed
    stubber.add_client_error("update_item", code, http_status_code=status)
    with stubber:
        assert limiter.consume(RULE, NOW_MS) is counted
    stubber.assert_no_pending_responses()


def test_a_throttled_counter_is_an_error_not_a_pass(stubbed: tuple[RateLimiter, Stubber]) -> None:
    # A throttled write did not happen: going on would lift the limit exactly when the
    # table is overloaded.
    limiter, stubber = stubbed
    stubber.add_client_error(
        "update_item", "ProvisionedThroughputExceededException", http_status_code=400
    )
    with stubber, pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
        limiter.consume(RULE, NOW_MS)
