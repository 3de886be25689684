"""`make mutate`: plants each deliberate bug of tests/mutation/mutants.py, one at a time, in a
temporary copy of the repository and runs the unit + integration tests that guard it.

    python -m tests.mutation                 # every mutant
    python -m tests.mutation typing-pushed-before-forbidden --tests tests/e2e/test_fuzz_devserver.py
    python -m tests.mutation --list

A mutant is killed when its tests fail (or time out); it survives when they pass. The
copy is checked first: the tests of every mutant must pass on it unmutated, or the score
would mean nothing. Exits 1 if a mutant survives that is not accepted (with its reason)
in mutants.py, or if a mutant no longer applies to the code (its snippet moved).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mutation.mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("MUTATE_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
TIMEOUT_SECONDS = 900
# The fuzzers' example count is not what kills these mutants: keep it small here.
ENV = {**os.environ, "FUZZ_EXAMPLES": os.environ.get("FUZZ_EXAMPLES", "10")}


def copy_repository(target: Path) -> None:
    """The working tree's files that git knows of (tracked or not ignored), as they are."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = ROOT / raw.decode()
        if source.is_file() and not source.is_symlink():
            destination = target / raw.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def run_tests(copy: Path, tests: tuple[str, ...], log: Path) -> tuple[int | None, float]:
    """(pytest's exit code, seconds) of ``tests`` in the copy, stopping at the first
    failure; None for a run that hung past TIMEOUT_SECONDS."""
    started = time.monotonic()
    with log.open("wb") as out:
        try:
            result = subprocess.run(
                [PYTHON, "-m", "pytest", *tests, "-x", "-q", "-p", "no:xdist"],
                cwd=copy,
                env=ENV,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - started
    return result.returncode, time.monotonic() - started


def _first_failure(log: Path) -> str:
    """The test that killed a mutant and its first error line (what the test saw)."""
    lines = log.read_text(errors="replace").splitlines()
    error = next((line[1:].strip() for line in lines if line.startswith("E ")), "")
    for line in lines:
        if line.startswith(("FAILED ", "ERROR ")):
            return f"{line.split(' - ')[0][:140]}: {error[:160]}"
    return "(a timeout, or no test summary)"


def apply(copy: Path, mutant: Mutant) -> str:
    """Plants the mutant; returns the file's original text (to put back)."""
    path = copy / mutant.path
    original = path.read_text()
    found = original.count(mutant.before)
    if found != 1:
        raise LookupError(f"{mutant.name}: its snippet occurs {found} times in {mutant.path}")
    path.write_text(original.replace(mutant.before, mutant.after))
    return original


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation")
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--tests", nargs="+", help="run these tests instead of the mutant's")
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--check", action="store_true", help="only check that every mutant still applies"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = parser.parse_args()
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants: {sorted(unknown)}")
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list:
        for m in chosen:
            print(f"{m.area:24} {m.name}")
        return 0
    if args.check:
        stale = []
        for m in chosen:
            found = (ROOT / m.path).read_text().count(m.before)
            if found != 1:
                stale.append(f"{m.name}: its snippet occurs {found} times in {m.path}")
        print("\n".join(stale) or f"all {len(chosen)} mutants apply")
        return 1 if stale else 0

    with tempfile.TemporaryDirectory(prefix="switchboard-mutate-") as tmp:
        copy, logs = Path(tmp) / "repo", Path(tmp) / "logs"
        logs.mkdir()
        copy_repository(copy)
        selections = sorted({tuple(args.tests) if args.tests else m.tests for m in chosen})
        if not args.no_baseline:
            for tests in selections:
                code, seconds = run_tests(copy, tests, logs / "baseline.log")
                if code != 0:
                    print((logs / "baseline.log").read_text()[-4000:])
                    print(f"baseline FAILED (unmutated copy): {' '.join(tests)}")
                    return 1
                print(f"baseline ok in {seconds:5.1f} s: {' '.join(tests)}", flush=True)

        survivors: list[Mutant] = []
        stale: list[str] = []
        broken: list[str] = []
        for mutant in chosen:
            try:
                original = apply(copy, mutant)
            except LookupError as exc:
                stale.append(str(exc))
                print(f"STALE     {exc}", flush=True)
                continue
            try:
                tests = tuple(args.tests) if args.tests else mutant.tests
                code, seconds = run_tests(copy, tests, logs / f"{mutant.name}.log")
            finally:
                (copy / mutant.path).write_text(original)
            # Killed means a test failed (exit 1) or hung. Any other exit (collection
            # error, no tests, usage) says the run itself broke: no verdict.
            verdict = {0: "SURVIVED", 1: "killed", None: "killed (hung)"}.get(code, "ERROR")
            if code == 0:
                survivors.append(mutant)
                verdict += " (accepted)" if mutant.accepted else ""
            elif verdict == "ERROR":
                broken.append(mutant.name)
                print((logs / f"{mutant.name}.log").read_text(errors="replace")[-2000:])
            print(f"{verdict:20} {seconds:6.1f} s  {mutant.area:24} {mutant.name}", flush=True)
            if code == 1:
                print(f"{'':30}by {_first_failure(logs / f'{mutant.name}.log')}", flush=True)

    killed = len(chosen) - len(survivors) - len(stale) - len(broken)
    print(f"\nmutation score: {killed}/{len(chosen)} killed")
    if broken:
        print(f"  no verdict (the test run broke): {', '.join(broken)}")
    for mutant in survivors:
        print(f"  survived: {mutant.name}: {mutant.accepted or 'NOT ACCEPTED'}")
    unaccepted = [m for m in survivors if not m.accepted]
    return 1 if unaccepted or stale or broken else 0


if __name__ == "__main__":
    sys.exit(main())
