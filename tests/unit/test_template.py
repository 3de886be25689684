"""template.yaml: SAM transforms it, cfn-lint finds nothing, and the security basics hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devserver.template import load_yaml, sam_transform

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    return sam_transform(TEMPLATE)


def test_sam_transform_yields_every_function_with_its_role(transformed: dict[str, Any]) -> None:
    resources = transformed["Resources"]
    functions = {k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    assert {"AuthorizerFunction", "ConnectionFunction", "MessageFunction"} <= functions
    for name in functions:
        props = resources[name]["Properties"]
        assert props["Runtime"] == "python3.13"
        assert f"{name}Role" in resources


def test_event_source_mappings_report_partial_batch_failures(transformed: dict[str, Any]) -> None:
    mappings = [
        v["Properties"]
        for v in transformed["Resources"].values()
        if v["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    assert len(mappings) >= 3
    assert all(m.get("FunctionResponseTypes") == ["ReportBatchItemFailures"] for m in mappings)


def test_tables_are_encrypted_and_queues_have_dead_letter_queues() -> None:
    resources = load_yaml(TEMPLATE)["Resources"]
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            assert props["SSESpecification"]["SSEEnabled"] is True, name
            assert props["BillingMode"] == "PAY_PER_REQUEST", name
        if resource["Type"] == "AWS::SQS::Queue":
            assert props.get("SqsManagedSseEnabled") is True, name
            if not name.endswith("DLQ"):
                assert "deadLetterTargetArn" in props["RedrivePolicy"], name


def test_cfn_lint_is_clean() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_upload_processor_cannot_take_the_accounts_concurrency(
    transformed: dict[str, Any],
) -> None:
    # Abuse: a few bomb uploads a second used to occupy every Lambda the account may run.
    resources = transformed["Resources"]
    parameters = transformed.get("Parameters", {})
    concurrency = parameters["UploadProcessorConcurrency"]["Default"]
    processor = resources["UploadProcessorFunction"]["Properties"]
    assert processor["ReservedConcurrentExecutions"] == {"Ref": "UploadProcessorConcurrency"}
    (mapping,) = [
        v["Properties"]
        for v in resources.values()
        if v["Type"] == "AWS::Lambda::EventSourceMapping"
        and v["Properties"]["FunctionName"] == {"Ref": "UploadProcessorFunction"}
    ]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "UploadProcessorConcurrency"}}
    assert 2 <= int(concurrency) <= 10


def test_the_uploads_bucket_names_its_cors_origins() -> None:
    template = load_yaml(TEMPLATE)
    origins = template["Parameters"]["UploadAllowedOrigins"]
    assert "*" not in origins["Default"] and origins["AllowedPattern"] == "^[^*]+$"
    (rule,) = template["Resources"]["UploadsBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == {"Ref": "UploadAllowedOrigins"}
