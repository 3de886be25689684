"""IaC scanning: checkov finds no failed check in template.yaml, and every skipped check
has its reason written in the template (globally skipped checks in the "Security scan"
comment block, resource-specific ones in the resource's Metadata)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from devserver.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def _global_skips() -> list[str]:
    config = yaml.safe_load((ROOT / ".checkov.yaml").read_text())
    return list(config["skip-check"])


def _reasons_in_template() -> dict[str, str]:
    """``#   CKV_AWS_117 (...): reason`` lines of the template's "Security scan" block."""
    text = (ROOT / "template.yaml").read_text()
    block = text[text.index("# Security scan") :]
    block = block[: block.index("\n\n")]
    return dict(re.findall(r"^#\s+(CKV_AWS_\d+)\b[^:]*:\s*(\S.*)$", block, flags=re.M))


def test_every_global_skip_has_a_reason_in_the_template() -> None:
    reasons = _reasons_in_template()
    assert set(reasons) == set(_global_skips())
    assert all(len(reason) > 20 for reason in reasons.values()), reasons


def test_every_resource_skip_has_a_comment() -> None:
    resources = load_yaml(ROOT / "template.yaml")["Resources"]
    for name, resource in resources.items():
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, f"{name}: skip {skip['id']} needs a reason"


def test_checkov_finds_no_failed_check() -> None:
    if not CHECKOV.exists():
        pytest.fail("checkov is not installed: `make test` (or `make scan`) installs it")
    result = subprocess.run(
        [str(CHECKOV), "--config-file", ".checkov.yaml", "-f", "template.yaml", "-o", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = report.get("results", {}).get("failed_checks", [])
    summary = report.get("summary", {})
    assert summary.get("resource_count", 0) > 30, summary
    assert not failed, [(f["check_id"], f["resource"], f["check_name"]) for f in failed]
