"""The results as a Markdown table (printed, and written into docs/performance.md between
its bench markers) and as PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"

GOALS: dict[str, tuple[str, str, float]] = {
    # key: (label, comparison, goal)
    "coldstart_ratio": ("Cold start, worst WebSocket function / boto3 + one client", "<=", 1.3),
    "ddb_calls_per_message": ("DynamoDB calls per 1:1 send (recipient online)", "<=", 3),
    "scan_calls": ("Scans on request paths", "==", 0),
    "fanout_1000_speedup": ("Fan-out to 1,000 connections vs sequential (20 ms/post)", ">=", 10),
    "devserver_msgs_per_s": (
        "Devserver: 1:1 messages/s, 50 sender/receiver pairs, 1,000 more users connected",
        ">=",
        100,
    ),
    "backlog_speedup": (
        "Backlog of 1,000 messages: message:batch frames vs one post per message",
        ">=",
        5,
    ),
    "cost_per_million_all_in": (
        "All-in $ per million 1:1 messages (send + streams + queues, search included)",
        "<=",
        5.0,
    ),
}


def goal_met(key: str, value: float) -> bool:
    _, op, goal = GOALS[key]
    return {"<=": value <= goal, ">=": value >= goal, "==": value == goal}[op]


def backlog_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Figure 5's rows: its goal (when it is the only figure run) and both sides."""
    rows = []
    if "e2e" not in results:
        label, op, goal = GOALS["backlog_speedup"]
        value = results["backlog_speedup"]
        status = "met" if goal_met("backlog_speedup", value) else "MISSED"
        rows.append((f"{label} [`backlog_speedup`]", _fmt(value), f"{op} {_fmt(goal)}", status))
    backlog = results["backlog"]
    for key, run in (
        ("backlog_seconds_per_message_posts", "per_message"),
        ("backlog_seconds", "batched"),
    ):
        one = backlog[run]
        rows.append(
            (
                f"Offline backlog: {one['messages']:,} messages to a reconnecting user, "
                f"{'message:batch frames' if one['batch'] else 'one post per message'} "
                f"({one['frames']:,} frames) [`{key}`]",
                f"{one['delivery_seconds']:.2f} s"
                + (", in order" if one["in_order"] else ", OUT OF ORDER"),
                "reported",
                "",
            )
        )
    return rows


def devstart_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Figure 10's rows (absent from results written before it existed)."""
    started = results.get("devstart")
    if not started:
        return []
    on_demand, prewarm = started["on_demand"], started["prewarm"]
    return [
        (
            "Devserver start, workers on demand (default) [`devserver_start_cpu_seconds`]",
            f"ready in {on_demand['ready_seconds']:.1f} s on {on_demand['cpu_seconds']:.1f} s "
            f"of CPU, {on_demand['processes']:.0f} processes",
            "reported",
            "",
        ),
        (
            "Devserver start, `--prewarm` (every pool full) [`devserver_start_cpu_ratio`]",
            f"ready in {prewarm['ready_seconds']:.1f} s on {prewarm['cpu_seconds']:.1f} s "
            f"of CPU, {prewarm['processes']:.0f} processes "
            f"({started['devserver_start_cpu_ratio']:g}x the CPU)",
            "reported",
            "",
        ),
    ]


def e2e_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Figure 4's rows: its goal (when it is the only figure run), the latency, the idle
    users' connections and the CPU per message."""
    rows = []
    e2e = results["e2e"]
    if "coldstart_ratio" not in results:
        label, op, goal = GOALS["devserver_msgs_per_s"]
        value = results["devserver_msgs_per_s"]
        status = "met" if goal_met("devserver_msgs_per_s", value) else "MISSED"
        rows.append(
            (f"{label} [`devserver_msgs_per_s`]", _fmt(value), f"{op} {_fmt(goal)}", status)
        )
    rows.append(
        (
            f"End-to-end latency p50 / p95 / p99, {e2e['clients']} clients at "
            f"{e2e['offered_msgs_per_s']:g} msg/s ({e2e['load_fraction']:.0%} of the "
            "throughput) [`e2e_p99_ms`]",
            f"{e2e['latency_ms']['p50']:.0f} / {e2e['latency_ms']['p95']:.0f} / "
            f"{results['e2e_p99_ms']:.0f} ms",
            "reported",
            "",
        )
    )
    idle = e2e.get("idle_users") or {}
    if idle:
        rows.append(
            (
                f"{idle['users']:,} connections opened, {idle['concurrency']} handshakes at a "
                "time [`load_connect_per_s`]",
                f"{results['load_connect_per_s']:.1f} /s",
                "reported",
                "",
            )
        )
    cpu = e2e.get("cpu") or {}
    if cpu:
        rows.append(
            (
                "CPU per message at saturation: devserver process / everything (its "
                "ceilings: one core / all cores) [`e2e.cpu`]",
                f"{cpu['devserver_ms_per_message']:.1f} / {cpu['total_ms_per_message']:.1f} ms "
                f"({cpu['ceiling_msgs_per_s_devserver_process']:g} / "
                f"{cpu['ceiling_msgs_per_s_all_cores']:g} msg/s)",
                "reported",
                "",
            )
        )
    return rows


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for key, (label, op, goal) in GOALS.items():
        value = results[key]
        status = "met" if goal_met(key, value) else "MISSED"
        rows.append((f"{label} [`{key}`]", _fmt(value), f"{op} {_fmt(goal)}", status))
    rows += first_request_rows(results)
    rows += e2e_rows(results)
    rows += backlog_rows(results)
    rows += devstart_rows(results)
    searched = results.get("search")
    if searched:
        rows.append(
            (
                f"Search latency p50 / p99 through the devserver, "
                f"{searched['corpus_messages']:,}-message corpus [`search_p99_ms`]",
                f"{results['search_p50_ms']:.0f} / {results['search_p99_ms']:.0f} ms",
                "reported",
                "",
            )
        )
        rows.append(
            (
                "AWS calls per search, worst query kind [`search_calls_max`]",
                f"{results['search_calls_max']:g}",
                "reported",
                "",
            )
        )
        rows.append(
            (
                "Read units per search, worst query kind [`search_rru_max`]",
                f"{results.get('search_rru_max', 0):g}",
                "reported",
                "",
            )
        )
        rows.append(
            (
                "Write units per indexed 1:1 message [`search_wru_per_message`]",
                f"{results['search_wru_per_message']:g}",
                "reported",
                "",
            )
        )
    signaled = results.get("signaling")
    if signaled:
        ring, ice = signaled["ring_ms"], signaled["ice_relay_ms"]
        rows.append(
            (
                "Call signaling through the devserver: `call:initiate` -> `call:incoming`, "
                f"p50 / p99 of {ring['count']} calls [`signaling_ring_p99_ms`]",
                f"{ring['p50']:.0f} / {ring['p99']:.0f} ms",
                "reported (seed: < 50)",
                "",
            )
        )
        rows.append(
            (
                "ICE candidate relay, sender -> peer, p50 / p99 of "
                f"{ice['count']} candidates [`signaling_ice_p99_ms`]",
                f"{ice['p50']:.0f} / {ice['p99']:.0f} ms",
                "reported (seed: < 50)",
                "",
            )
        )
    return rows


def search_lines(searched: dict[str, Any]) -> list[str]:
    """The search section: latency and calls per query kind, indexing cost per size."""
    latency, calls = searched["latency_ms"], searched["search_calls"]
    return [
        "### Search",
        "",
        f"{searched['corpus_messages']:,} messages in {searched['corpus_conversations']:,} "
        f"conversations, all in the searching user's index ({searched['documents']:,} "
        f"index documents, stored and indexed in {searched['seeding_seconds']:.0f} s).",
        "",
        markdown_table(
            [
                (
                    name,
                    f"`{latency[name]['query']}`",
                    str(latency[name]["hits"]),
                    f"{latency[name]['p50']:.0f} / {latency[name]['p99']:.0f} ms",
                    f"{calls[name]['calls']:g}",
                    f"{calls[name].get('read_units', 0):g}",
                    ", ".join(f"{k} x{n}" for k, n in calls[name]["by_operation"].items()),
                )
                for name in calls
            ],
            ("Query kind", "Query", "Hits", "p50 / p99", "AWS calls", "RRU", "Calls"),
        ),
        "",
        markdown_table(
            [
                (
                    name.replace("members_", "") + " members",
                    f"{c['write_units_per_message']:g}",
                    f"{c['read_units_per_message']:g}",
                    f"{c['calls_per_message']:g}",
                    f"{c.get('document_bytes_mean', 0)} / {c.get('document_bytes_max', 0)}",
                )
                for name, c in searched["index_cost"].items()
            ],
            (
                "Indexing one message",
                "WRU",
                "RRU",
                "Calls (batches of 100)",
                "Document bytes, mean / max",
            ),
        ),
        "",
    ]


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def results_markdown(results: dict[str, Any], plots: dict[str, str]) -> str:
    parts = [
        f"Run: `{results['meta']['command']}` on {results['meta']['date']} "
        f"({results['meta']['mode']} mode, {results['meta']['seconds']:.0f} s).",
        "",
        markdown_table(summary_rows(results), ("Figure", "Measured", "Goal", "")),
        "",
        "### Cold start per function",
        "",
        coldstart_table(results["coldstart"]),
        "",
        *import_profile_lines(results["coldstart"]),
        "### AWS calls per operation",
        "",
        markdown_table(
            [
                (
                    name,
                    str(op["dynamodb"]),
                    f"{op['read_units']:g} / {op['write_units']:g}",
                    str(op["posts"]),
                    str(op["sqs"]),
                    ", ".join(f"{k} x{n}" for k, n in op["calls"].items()) or "none",
                )
                for name, op in results["calls"]["operations"].items()
            ],
            ("Operation", "DynamoDB calls", "RRU / WRU", "Posts", "SQS", "Calls"),
        ),
        "",
        "### Fan-out",
        "",
        markdown_table(
            [
                (
                    f"{p['connections']:,}",
                    f"{p['parallel_ms']:.0f} ms",
                    f"{p['sequential_ms']:.0f} ms",
                    f"{p['speedup']:.1f}x",
                )
                for p in results["fanout"]["curve"]
            ],
            ("Connections", "fan_out (bounded parallel)", "Sequential", "Speedup"),
        ),
        "",
        "### Cost model",
        "",
        markdown_table(
            [
                (
                    f"{int(users):,} connected users",
                    f"${c['switchboard']:.2f}",
                    f"${c['scan_design']:.2f}",
                    f"{c['scan_design'] / c['switchboard']:.1f}x",
                )
                for users, c in results["cost"]["per_million_messages"].items()
            ],
            ("Per million 1:1 messages", "Switchboard", "Scan per message (AWS sample)", "Ratio"),
        ),
        "",
        *(
            [
                "With search indexing (the indexer's writes per message added): "
                + ", ".join(
                    f"${c['switchboard_with_search']:.2f} at {int(u):,} users"
                    for u, c in results["cost"]["per_million_messages"].items()
                )
                + " per million 1:1 messages.",
            ]
            if results["cost"].get("indexing_operation")
            else []
        ),
        "",
        markdown_table(
            [
                (key.replace("_", " "), f"${value:,.2f}")
                for key, value in results["cost"]["per_10k_users_month"].items()
            ],
            ("10,000 always-connected users, per month", "$"),
        ),
        "",
    ]
    if results["cost"].get("all_in"):
        parts += all_in_lines(results["cost"]["all_in"], results["all_in"])
    if results.get("search"):
        parts += search_lines(results["search"])
    parts += [
        "### Conditions of this run",
        "",
        *conditions_lines(results["meta"]["conditions"]),
        "",
    ]
    for title, path in plots.items():
        parts.append(f"![{title}]({path})")
    return "\n".join(parts) + "\n"


SERVICES = ("API Gateway", "Lambda", "DynamoDB", "SQS")


def all_in_lines(money: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """The all-in cost of a message: $ per million per part and AWS service."""
    rows = [
        (
            name,
            *(f"${part[s]:.2f}" for s in SERVICES),
            f"${money['by_part'][name]:.2f}",
            f"{money['write_units_per_message'][name]:g}",
        )
        for name, part in money["parts"].items()
    ]
    rows.append(
        (
            "**all in**",
            *(f"${money['by_service'][s]:.2f}" for s in SERVICES),
            f"**${money['per_million']:.2f}**",
            f"{sum(money['write_units_per_message'].values()):g}",
        )
    )
    records = ", ".join(
        f"{source.rsplit('-', 1)[-1]} → {function} {n}"
        for key, n in measured["records"].items()
        if n
        for source, function in [key.split(" -> ")]
    )
    return [
        "### The all-in cost of a message",
        "",
        f"{measured['messages']} chat-like 1:1 messages to online recipients "
        f"({measured['pairs']} pairs), then every stream and queue drained through the "
        f"template's consumers (records handed over: {records}). Per million messages:",
        "",
        markdown_table(rows, ("Part", *SERVICES, "Total", "WRU per message")),
        "",
        f"Without search indexing: ${money['per_million_without_search']:.2f} per million.",
        "",
    ]


def coldstart_table(cold: dict[str, Any]) -> str:
    first = cold.get("first_request") or {"functions": {}}
    header: tuple[str, ...] = (
        "Function",
        "Import + init, CPU (median)",
        "Ratio to baseline (median of pairs)",
    )
    if first["functions"]:
        header += ("+ first request: CPU (request alone)", "Ratio to baseline + one call")

    def extra(name: str) -> tuple[str, ...]:
        if not first["functions"]:
            return ()
        f = first["functions"].get(name)
        if f is None:
            return ("", "")
        return (f"{f['total_ms']:.0f} ms ({f['first_request_ms']:.0f} ms)", f"{f['ratio']:.2f}")

    rows = [
        (
            name + (" (WebSocket)" if f["websocket"] else ""),
            f"{f['median_ms']:.0f} ms",
            f"{f['ratio']:.2f}",
            *extra(name),
        )
        for name, f in cold["functions"].items()
    ]
    if "floor" in cold:  # results written before the floor was measured have none
        floor = cold["floor"]
        rows.append(
            (
                "floor: `import boto3` (no client) + a pydantic model + a Powertools Logger",
                f"{floor['median_ms']:.0f} ms",
                f"{floor['ratio']:.2f}",
                *(("", "") if first["functions"] else ()),
            )
        )
    baseline = (
        "baseline: `import boto3` + one client",
        f"{cold['baseline_median_ms']:.0f} ms",
        "1.00",
    )
    if first["functions"]:
        baseline += (f"{first['baseline_median_ms']:.0f} ms (+ one GetItem)", "1.00")
    return markdown_table([*rows, baseline], header)


def first_request_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The reported cold-start rows beside the goal: the first request, and the floor."""
    rows = []
    if "coldstart_floor_ratio" in results:
        rows.append(
            (
                "Cold start floor: `import boto3` (no client) + a pydantic model + a Powertools "
                "Logger / boto3 + one client [`coldstart_floor_ratio`]",
                _fmt(results["coldstart_floor_ratio"]),
                "reported",
                "",
            )
        )
    first = results["coldstart"].get("first_request")
    if not first:
        return rows
    return [
        *rows,
        (
            "Cold start + the first request, worst WebSocket function / boto3 + one client + "
            "one call [`coldstart_first_request_ratio`]",
            f"{first['ratio']:.3f} ({first['worst_websocket_function']})",
            "reported",
            "",
        ),
    ]


def coldstart_markdown(results: dict[str, Any]) -> str:
    """``--only coldstart``: the goal's row, the per-function table, the import profile."""
    label, op, goal = GOALS["coldstart_ratio"]
    value = results["coldstart_ratio"]
    row = (
        f"{label} [`coldstart_ratio`]",
        _fmt(value),
        f"{op} {_fmt(goal)}",
        "met" if goal_met("coldstart_ratio", value) else "MISSED",
    )
    return "\n".join(
        [
            f"Run: `{results['meta']['command']}` on {results['meta']['date']}, load average "
            f"{results['meta']['conditions']['load_average']} at the start, "
            f"{results['meta']['load_average_at_end']} at the end.",
            "",
            markdown_table([row, *first_request_rows(results)], ("Figure", "Measured", "Goal", "")),
            "",
            coldstart_table(results["coldstart"]),
            "",
            *import_profile_lines(results["coldstart"]),
        ]
    )


def import_profile_lines(cold: dict[str, Any]) -> list[str]:
    profile = cold.get("import_profile") or {}
    lines = []
    for name, packages in profile.items():
        top = ", ".join(f"{p['package']} {p['share']:.0%}" for p in packages)
        lines += [f"Where {name}'s import time goes (`-X importtime`, per package): {top}.", ""]
    return lines


def conditions_lines(conditions: dict[str, Any]) -> list[str]:
    packages = ", ".join(f"{name} {version}" for name, version in conditions["packages"].items())
    plan = ", ".join(f"{key}={value}" for key, value in conditions["plan"].items())
    return [
        f"- Machine: {conditions['cpus']} CPUs ({conditions['machine']}), "
        f"{conditions['platform']}, load average at start {conditions['load_average']}",
        f"- Python {conditions['python']}; {packages}",
        f"- Parameters: {plan}",
    ]


def write_into_doc(doc: Path, block: str) -> None:
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{doc} has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{block}{END}{tail}")


def plot(results: dict[str, Any], directory: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    latencies = results["e2e"]["latency_samples_ms"]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.hist(latencies, bins=40, color="#3b7dd8")
    for p, style in (("p50", ":"), ("p95", "--"), ("p99", "-.")):
        value = results["e2e"]["latency_ms"][p]
        axes.axvline(value, linestyle=style, color="#444", label=f"{p} {value:.0f} ms")
    axes.legend()
    axes.set_xlabel("sender-to-recipient latency (ms), through the devserver")
    axes.set_ylabel("messages")
    axes.set_title("End-to-end latency distribution")
    written["Latency distribution"] = _save(figure, directory / "bench-latency.png", plt)

    curve = results["fanout"]["curve"]
    figure, axes = plt.subplots(figsize=(7, 4))
    sizes = [p["connections"] for p in curve]
    axes.plot(sizes, [p["parallel_ms"] for p in curve], "o-", label="fan_out (32 in parallel)")
    axes.plot(sizes, [p["sequential_ms"] for p in curve], "s--", label="sequential posts")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("connections")
    axes.set_ylabel("wall time (ms)")
    axes.set_title(f"Fan-out, {results['fanout']['delay_ms']:g} ms per management-API post")
    axes.legend()
    written["Fan-out curve"] = _save(figure, directory / "bench-fanout.png", plt)

    costs = results["cost"].get("curve") or results["cost"]["per_million_messages"]
    users = [int(u) for u in costs]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(users, [c["switchboard"] for c in costs.values()], "o-", label="Switchboard")
    axes.plot(
        users,
        [c["scan_design"] for c in costs.values()],
        "s--",
        label="Scan per message (AWS sample)",
    )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("connected users")
    axes.set_ylabel("$ per million 1:1 messages")
    axes.set_title("Cost per message vs connected users")
    axes.legend()
    written["Cost vs connected users"] = _save(figure, directory / "bench-cost.png", plt)

    money = results["cost"].get("all_in")
    if money:
        figure, axes = plt.subplots(figsize=(7, 4))
        parts = list(money["parts"])
        left = [0.0] * len(parts)
        colours = {"API Gateway": "#3b7dd8", "Lambda": "#e8a33d", "DynamoDB": "#5aa55a"}
        for service in SERVICES:
            values = [money["parts"][p][service] for p in parts]
            axes.barh(parts, values, left=left, label=service, color=colours.get(service))
            left = [a + b for a, b in zip(left, values, strict=True)]
        axes.axvline(5.0, linestyle="--", color="#b33", label="goal: $5.00 all in")
        axes.set_xlabel("$ per million 1:1 messages (list prices)")
        axes.set_title(f"All-in cost of a message: ${money['per_million']:.2f} per million")
        axes.invert_yaxis()
        axes.legend(loc="lower right")  # the request path, the longest bar, is on top
        written["All-in cost per part and service"] = _save(
            figure, directory / "bench-allin.png", plt
        )
    return written


def _save(figure: Any, path: Path, plt: Any) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
