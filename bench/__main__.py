"""``python -m bench [--quick] [--out FILE] [--docs/--no-docs] [--only FIGURE]``: runs every
figure, shows progress on stderr, writes the JSON results, prints the table and (by
default for a full run) writes the table and plots into docs/performance.md and
docs/*.png. ``--only`` runs one figure alone and never writes the docs:
``--only e2e`` figure 4 (devserver throughput, latency, the idle users' connections, CPU
per message by component); ``--only coldstart [--rounds N] [--profile]`` the cold-start
figure (the WebSocket functions with ``--quick``, every function otherwise);
``--only backlog`` figure 5 (the offline backlog, one post per message against
``message:batch`` frames, in rounds); ``--only devstart`` figure 10 (what starting the
devserver costs, workers on demand against ``--prewarm``)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import (
    ROOT,
    allin,
    calls,
    coldstart,
    cost,
    devstart,
    e2e,
    fanout,
    report,
    search,
    signaling,
)
from bench.stack import local_stack


@dataclass(frozen=True)
class Plan:
    coldstart_rounds: int
    coldstart_websocket_only: bool
    fanout_sizes: list[int]
    fanout_sequential_posts: int
    calls_crowd: int
    e2e_pairs: int
    e2e_load_fraction: float
    e2e_steady_seconds: float
    e2e_saturate_seconds: float
    backlog_messages: int = 1000
    # rounds of (one post per message, message:batch frames): the median round counts
    backlog_rounds: int = 3
    # connected users who send nothing while the pairs send (devserver_msgs_per_s)
    e2e_idle_users: int = 1000
    search_messages: int = 1_000
    search_conversations: int = 10
    search_rounds: int = 5
    # messages indexed per conversation size for the write-unit count; the calls corpus
    search_index_samples: tuple[tuple[int, int], ...] = ((2, 40), (10, 10), (50, 4))
    search_calls_corpus: int = 100
    # the all-in count: senders (each to its own online recipient) x messages each
    allin_pairs: int = 5
    allin_per_pair: int = 4
    # call signaling through the devserver: calls placed, candidates relayed per call
    signaling_rounds: int = 5
    signaling_candidates: int = 5


QUICK = Plan(
    coldstart_rounds=3,
    coldstart_websocket_only=True,
    fanout_sizes=[10, 100, 1000],
    fanout_sequential_posts=100,
    calls_crowd=30,
    e2e_pairs=50,
    e2e_load_fraction=0.3,
    e2e_steady_seconds=5,
    e2e_saturate_seconds=3,
)
FULL = Plan(
    coldstart_rounds=9,
    coldstart_websocket_only=False,
    fanout_sizes=[1, 10, 100, 300, 1000],
    fanout_sequential_posts=1000,
    calls_crowd=100,
    e2e_pairs=50,
    e2e_load_fraction=0.3,
    e2e_steady_seconds=30,
    e2e_saturate_seconds=10,
    search_messages=100_000,
    search_conversations=1_000,
    search_rounds=30,
    backlog_rounds=5,
    search_index_samples=((2, 200), (10, 50), (50, 20)),
    search_calls_corpus=300,
    allin_pairs=10,
    allin_per_pair=10,
    signaling_rounds=30,
    signaling_candidates=10,
)


class Progress:
    def __init__(self, steps: int) -> None:
        self.steps, self.step, self.start = steps, 0, time.perf_counter()

    def begin(self, title: str) -> None:
        self.step += 1
        self.say(f"[{self.step}/{self.steps}] {title}")

    def say(self, message: str) -> None:
        print(f"  {time.perf_counter() - self.start:6.1f}s  {message}", file=sys.stderr, flush=True)


def conditions(plan: Plan) -> dict[str, Any]:
    packages = [
        "boto3",
        "botocore",
        "moto",
        "aws-lambda-powertools",
        "pydantic",
        "PyJWT",
        "websockets",
    ]
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "packages": {name: metadata.version(name) for name in packages},
        "plan": plan.__dict__,
    }


def run(plan: Plan, progress: Progress) -> dict[str, Any]:
    template = coldstart.load_template(ROOT)
    progress.begin("cold start per function (fresh processes)")
    cold = coldstart.measure(
        template, plan.coldstart_rounds, progress.say, websocket_only=plan.coldstart_websocket_only
    )
    if not plan.coldstart_websocket_only:  # the full run explains its worst function
        worst = cold["worst_websocket_function"]
        cold["import_profile"] = {worst: coldstart.import_profile(template, worst)}

    progress.begin("AWS calls per operation (handlers in-process on moto)")
    with local_stack() as stack:
        # The all-in count first: what calls.measure sets off later (a call's ring timeout,
        # a delayed SQS message) must not be drained as if the sends had caused it.
        everything = allin.measure(
            stack, pairs=plan.allin_pairs, per_pair=plan.allin_per_pair, progress=progress.say
        )
        counted = calls.measure(stack, crowd=plan.calls_crowd, progress=progress.say)
        search_costs = search.costs(
            stack,
            progress=progress.say,
            samples=dict(plan.search_index_samples),
            corpus_messages=plan.search_calls_corpus,
        )
        # Last on the stack: its sends and calls set off stream records and a ring timeout.
        cold["first_request"] = coldstart.measure_first_request(
            stack, plan.coldstart_rounds, progress.say
        )

    progress.begin("fan-out through gateway.ManagementApi (20 ms per post)")
    fan = fanout.measure(
        plan.fanout_sizes, plan.fanout_sequential_posts, delay_ms=20, progress=progress.say
    )

    progress.begin("end to end through the devserver (real WebSocket clients)")
    with tempfile.TemporaryDirectory(prefix="bench-devserver-") as workdir:
        ends = e2e.measure(
            Path(workdir),
            load=_load(plan),
            backlog_messages=plan.backlog_messages,
            backlog_rounds=plan.backlog_rounds,
            progress=progress.say,
        )
    backlog = ends.pop("backlog")

    progress.begin(f"search latency through the devserver ({plan.search_messages:,} messages)")
    searched = search.measure(
        messages=plan.search_messages,
        conversations=plan.search_conversations,
        rounds=plan.search_rounds,
        progress=progress.say,
    )
    searched.update(search_costs)

    progress.begin("call signaling through the devserver (ring, ICE relay)")
    with tempfile.TemporaryDirectory(prefix="bench-signaling-") as workdir:
        signaled = signaling.measure(
            Path(workdir),
            rounds=plan.signaling_rounds,
            candidates=plan.signaling_candidates,
            progress=progress.say,
        )

    progress.begin("devserver start: workers on demand against --prewarm")
    started = devstart.measure(progress=progress.say)

    progress.begin("cost model")
    money = cost.model(counted["operations"], indexing=search_costs["index_cost"])
    money["all_in"] = cost.all_in(everything)
    largest = max(plan.fanout_sizes)
    return {
        **backlog_keys(backlog),
        "coldstart_ratio": cold["coldstart_ratio"],
        "coldstart_ratio_per_function": {name: f["ratio"] for name, f in cold["functions"].items()},
        "coldstart_floor_ratio": cold["floor"]["ratio"],
        "coldstart_first_request_ratio": cold["first_request"]["ratio"],
        "ddb_calls_per_message": counted["ddb_calls_per_message"],
        "scan_calls": counted["scan_calls"],
        "fanout_1000_speedup": fan[f"fanout_{largest}_speedup"],
        **e2e_keys(ends),
        "cost_per_million_messages": money["per_million_messages"],
        "cost_per_million_all_in": money["all_in"]["per_million"],
        "cost_per_million_all_in_without_search": money["all_in"]["per_million_without_search"],
        "cost_per_10k_users_month": money["per_10k_users_month"]["total"],
        "search_p50_ms": searched["search_p50_ms"],
        "search_p99_ms": searched["search_p99_ms"],
        "search_calls_max": searched["calls_per_search_max"],
        "search_rru_max": searched["read_units_per_search_max"],
        "search_wru_per_message": searched["wru_per_indexed_message_1to1"],
        "signaling_ring_p99_ms": signaled["signaling_ring_p99_ms"],
        "signaling_ice_p99_ms": signaled["signaling_ice_p99_ms"],
        **devstart_keys(started),
        "coldstart": cold,
        "calls": counted,
        "all_in": everything,
        "fanout": fan,
        "search": searched,
        "signaling": signaled,
        "cost": money,
    }


def e2e_keys(ends: dict[str, Any]) -> dict[str, Any]:
    return {
        "e2e_p99_ms": ends["e2e_p99_ms"],
        "e2e_msgs_per_s": ends["e2e_msgs_per_s"],
        "devserver_msgs_per_s": ends["e2e_msgs_per_s"],
        "load_connect_per_s": ends["idle_users"].get("load_connect_per_s", 0),
        "e2e": ends,
    }


def devstart_keys(started: dict[str, Any]) -> dict[str, Any]:
    return {
        "devserver_start_seconds": started["devserver_start_seconds"],
        "devserver_start_cpu_seconds": started["devserver_start_cpu_seconds"],
        "devserver_start_cpu_ratio": started["devserver_start_cpu_ratio"],
        "devstart": started,
    }


def run_devstart(plan: Plan, progress: Progress) -> dict[str, Any]:
    progress.begin("devserver start: workers on demand against --prewarm")
    return devstart_keys(devstart.measure(progress=progress.say))


def backlog_keys(backlog: dict[str, Any]) -> dict[str, Any]:
    return {
        "backlog_seconds": backlog["batched"]["delivery_seconds"],
        "backlog_seconds_per_message_posts": backlog["per_message"]["delivery_seconds"],
        "backlog_speedup": backlog["speedup"],
        "backlog": backlog,
    }


def run_backlog(plan: Plan, progress: Progress) -> dict[str, Any]:
    progress.begin(f"offline backlog through the devserver ({plan.backlog_rounds} rounds)")
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as workdir:
        backlog = e2e.measure_backlog(
            Path(workdir),
            messages=plan.backlog_messages,
            rounds=plan.backlog_rounds,
            progress=progress.say,
        )
    return backlog_keys(backlog)


def run_e2e(plan: Plan, progress: Progress) -> dict[str, Any]:
    progress.begin(f"end to end through the devserver ({plan.e2e_pairs} pairs)")
    with tempfile.TemporaryDirectory(prefix="bench-devserver-") as workdir:
        ends = e2e.measure_throughput(Path(workdir), load=_load(plan), progress=progress.say)
    return e2e_keys(ends)


def _load(plan: Plan) -> e2e.Load:
    return e2e.Load(
        pairs=plan.e2e_pairs,
        load_fraction=plan.e2e_load_fraction,
        steady_seconds=plan.e2e_steady_seconds,
        saturate_seconds=plan.e2e_saturate_seconds,
        idle_users=plan.e2e_idle_users,
    )


def run_coldstart(
    plan: Plan, progress: Progress, rounds: int | None, profile: bool
) -> dict[str, Any]:
    """The cold-start figure alone (``--only coldstart``): the same measurement as in a
    whole run, with the import profile of the worst WebSocket function on request."""
    template = coldstart.load_template(ROOT)
    progress.begin("cold start per function (fresh processes)")
    cold = coldstart.measure(
        template,
        rounds or plan.coldstart_rounds,
        progress.say,
        websocket_only=plan.coldstart_websocket_only,
    )
    if profile:
        worst = cold["worst_websocket_function"]
        cold["import_profile"] = {worst: coldstart.import_profile(template, worst)}
    progress.say("cold start + first request (moto stack)")
    with local_stack() as stack:
        cold["first_request"] = coldstart.measure_first_request(
            stack, rounds or plan.coldstart_rounds, progress.say
        )
    return {
        "coldstart_ratio": cold["coldstart_ratio"],
        "coldstart_ratio_per_function": {name: f["ratio"] for name, f in cold["functions"].items()},
        "coldstart_floor_ratio": cold["floor"]["ratio"],
        "coldstart_first_request_ratio": cold["first_request"]["ratio"],
        "coldstart": cold,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the < 60 s run")
    parser.add_argument(
        "--out",
        type=Path,
        help="the JSON results (default bench/results.json; bench/out/<figure>.json with --only)",
    )
    parser.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/performance.md's table and docs/bench-*.png (default: full runs only)",
    )
    parser.add_argument(
        "--only",
        choices=["coldstart", "e2e", "backlog", "devstart"],
        help="run one figure alone: its JSON and table rows (never the docs)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="with --only coldstart: rounds (default: plan)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="with --only coldstart: the worst's import profile"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "bench" / (f"out/{args.only}.json" if args.only else "results.json")
    plan = QUICK if args.quick else FULL
    progress = Progress(steps=1 if args.only else 8)
    started = time.perf_counter()
    machine = conditions(plan)
    if args.only == "coldstart":
        return _coldstart_only(args, plan, progress, machine, started)
    single = {
        "e2e": run_e2e,
        "backlog": run_backlog,
        "devstart": run_devstart,
    }  # one figure alone: JSON, table rows
    results = single[args.only](plan, progress) if args.only else run(plan, progress)
    results["meta"] = {
        "command": "python -m bench"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else ""),
        "mode": "quick" if args.quick else "full",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - started, 1),
        "conditions": machine,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    only_rows = {
        "e2e": report.e2e_rows,
        "backlog": report.backlog_rows,
        "devstart": report.devstart_rows,
    }
    rows = only_rows[args.only](results) if args.only else report.summary_rows(results)
    print(report.markdown_table(rows, ("Figure", "Measured", "Goal", "")))
    print(f"\nresults: {args.out} ({results['meta']['seconds']:.0f} s)")
    if args.only:
        missed = [k for k in report.GOALS if k in results and not report.goal_met(k, results[k])]
        if missed:
            print(f"goals missed: {', '.join(missed)}", file=sys.stderr)
        return 1 if missed else 0
    if args.docs if args.docs is not None else not args.quick:
        docs = ROOT / "docs"
        plots = report.plot(results, docs)
        report.write_into_doc(
            docs / "performance.md",
            report.results_markdown(results, {t: p.name for t, p in plots.items()}),
        )
        print(f"wrote {docs / 'performance.md'} and {', '.join(p.name for p in plots.values())}")
    missed = [key for key in report.GOALS if not report.goal_met(key, results[key])]
    if missed:
        print(f"goals missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


def _coldstart_only(
    args: argparse.Namespace,
    plan: Plan,
    progress: Progress,
    machine: dict[str, Any],
    started: float,
) -> int:
    results = run_coldstart(plan, progress, args.rounds, args.profile)
    results["meta"] = {
        "command": "python -m bench --only coldstart"
        + (" --quick" if args.quick else "")
        + (f" --rounds {args.rounds}" if args.rounds else ""),
        "mode": "coldstart only",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - started, 1),
        "conditions": machine,
        "load_average_at_end": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(report.coldstart_markdown(results))
    print(f"\nresults: {args.out} ({results['meta']['seconds']:.0f} s)")
    met = report.goal_met("coldstart_ratio", results["coldstart_ratio"])
    if not met:
        print("goals missed: coldstart_ratio", file=sys.stderr)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
