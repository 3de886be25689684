"""The deploy artifact holds exactly the locked versions.

`sam build` needs PyPI and takes minutes, so the suite checks the two halves it relies on:
the requirements.txt sam reads are the current, fully pinned closure of requirements.in at
constraints.txt's versions, and the build verifier (`make build` runs it on the real
.aws-sam/build) refuses an artifact holding anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.pinned_requirements import (
    ROOT,
    expected,
    generate,
    read_lock,
    sources,
    verify_build,
)


def test_generated_requirements_are_current() -> None:
    # Fails when a requirements.in or constraints.txt changed without `make requirements`.
    assert generate(check=True) == []


def test_every_requirement_sam_reads_is_pinned_to_the_lock() -> None:
    lock = read_lock()
    folders = set(sources().values())
    assert ROOT / "layers/common" in {f.resolve() for f in folders}
    pinned = 0
    for folder in folders:
        for raw in (folder / "requirements.txt").read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            name, _, version = line.partition("==")
            key = name.lower().replace("_", "-")
            assert key in lock and lock[key].version == version, (folder, line)
            pinned += 1
    # The analytics functions carry pydantic: at the layer's (the lock's) version.
    analytics = (ROOT / "functions/analytics/requirements.txt").read_text()
    assert f"pydantic=={lock['pydantic'].version}\n" in analytics
    assert f"pydantic_core=={lock['pydantic-core'].version}\n" in analytics
    assert pinned > 20


def _fake_build(build: Path) -> None:
    """What `sam build` leaves when it installs exactly the pinned requirements."""
    lock = read_lock()
    for logical_id, folder in sources().items():
        site = build / logical_id / ("python" if "Layer" in logical_id else "")
        site.mkdir(parents=True)
        for line in (expected(folder, lock) or "").splitlines():
            if "==" in line:
                name, _, version = line.partition("==")
                _dist_info(site, name, version)


def _dist_info(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_build_verifier_accepts_exactly_the_locked_build(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    assert verify_build(tmp_path) == []


def test_build_verifier_refuses_another_version_an_extra_and_a_missing_package(
    tmp_path: Path,
) -> None:
    _fake_build(tmp_path)
    analytics = tmp_path / "AnalyticsApiFunction"
    # What sam built before the requirements were pinned (the problem: pydantic from PyPI).
    for info in analytics.glob("pydantic-*.dist-info"):
        (info / "METADATA").write_text("Name: pydantic\nVersion: 2.14.4\n")
    _dist_info(tmp_path / "MessageFunction", "leftpad", "1.0")
    for info in (tmp_path / "CommonLayer" / "python").glob("boto3-*.dist-info"):
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
    problems = verify_build(tmp_path)
    lock = read_lock()
    assert problems == [
        f"AnalyticsApiFunction: pydantic 2.14.4, but constraints.txt locks "
        f"{lock['pydantic'].version}",
        f"CommonLayer: boto3 {lock['boto3'].version} is pinned but not installed",
        "MessageFunction: leftpad 1.0 is not in constraints.txt",
    ]


def test_build_verifier_refuses_an_empty_or_partial_build(tmp_path: Path) -> None:
    problems = verify_build(tmp_path)
    assert "no built artifacts" in problems[-1]
    assert any(p.startswith("CommonLayer: not in") for p in problems)


@pytest.mark.parametrize("folder", ["functions/connect", "functions/message"])
def test_functions_without_requirements_in_pin_nothing(folder: str) -> None:
    assert expected(ROOT / folder, read_lock()) is None
