"""The Tasks extension at the defaults users get: `tasks/get` poll throughput, and what creating a task costs against
a synchronous call of the same tool (`python bench/tasks.py`, `make bench-tasks`; see bench/README.md).

Target (d) only, at 2026-07-28 (the only era with tasks), every limit at its default: the per-caller rate limit
(120/minute; `tasks/get` polls count against it as any request does), `TASKS__MAX_PER_PRINCIPAL` (10) and
`TASKS__MAX_ACTIVE` (100). The load comes from as many callers as bench/callers.py plans for `tools/call`, each one a
distinct dev-issuer user sending in turn, so each holds at most one task at a time. Three points, each on a fresh
server pinned to core 0, wrk on core 1:

- `sync`: `tools/call echo_task` without the extension declared: an ordinary call, answered with the tool's result.
- `create`: the same call declaring `io.modelcontextprotocol/tasks`: answered with a `CreateTaskResult` (the handle
  only; the tool runs after the answer and its slot is freed when it ends, at once for this tool).
- `poll`: `tasks/get` of a completed task, each caller polling its own (created before the load, at most half of
  `TASKS__MAX_ACTIVE` at a time, each run to completion).

wrk runs CONNECTIONS (8) connections (see there why not 16), and during the `create` measurement a CompletionProbe
(bench/tasks_client.py) measures how long a task holds its slot.

Responses outside 2xx (429 from the per-caller caps, 503 from the overall one) are counted by status and reported,
flagged in the table, and make the exit status 1: never a silently throttled number.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cli, procs, sysinfo
from bench.callers import HEADROOM, SETUP_SECONDS, callers_needed, default_limit
from bench.driver import LoadResult, require_wrk, run_wrk, write_script_each
from bench.keys import BenchKeys
from bench.mcp_http import MODERN, Conn, Exchange, ProtocolError, Request
from bench.scenarios import (
    DRIVER_CORES,
    SERVER_CORES,
    BenchFailure,
    CpuUsage,
    Durations,
    settle,
    start,
    wait_first_call,
)
from bench.targets import PROJECT_ENV, REPO_ROOT, TARGETS, Context, Target
from bench.tasks_client import PROBE_INTERVAL_S, CompletionProbe, call_request, check, get_request, one_task_each
from bench.tasks_report import POINTS, markdown, median, ratios

CONNECTIONS = 8
"""wrk's connections, fewer than bench/run.py's 16: on a saturated core, a task of even an instant tool completes
only after its run's few awaits have each waited a turn of the event loop shared with every request in flight, so the
tasks active at once grow with the connections (6 to 7 per connection here): at 16 they meet TASKS__MAX_ACTIVE (100)
and creation gets 503s. At 8 the load stays under the overall cap it must not lift (the table reports any 503)."""


def task_caps() -> tuple[int, int]:
    """(per caller, overall): the defaults of TASKS__MAX_PER_PRINCIPAL and TASKS__MAX_ACTIVE, which stay on."""
    from app.settings.tasks import TasksSettings

    fields = TasksSettings.model_fields
    return int(fields["max_per_principal"].default), int(fields["max_active"].default)


def probe_callers(measure_s: float) -> int:
    """Callers of the completion probe's own: a create and a get every PROBE_INTERVAL_S, each within its limit."""
    amount, window = default_limit()
    per_window = 2 * min(measure_s + SETUP_SECONDS, window) / PROBE_INTERVAL_S
    return max(2, math.ceil(per_window / (HEADROOM * amount)))


def _usable(res: LoadResult, point: str, phase: str) -> LoadResult:
    if res.socket_errors or res.requests == 0:
        raise BenchFailure(f"{point} ({phase}): {res.socket_errors} socket errors in {res.requests} requests")
    return res


def measure(
    server: procs.Server,
    target: Target,
    requests: list[Request],
    point: str,
    ctx: Context,
    d: Durations,
    probe: CompletionProbe | None = None,
) -> dict[str, Any]:
    """wrk warm-up then measurement, as bench/scenarios.py's steady points, but non-2xx are counted, not fatal; the
    probe, if any, runs alongside the measurement."""
    script = write_script_each(requests, ctx.out_dir / "wrk" / f"tasks-{point}.lua")
    url = f"http://127.0.0.1:{server.port}{target.mcp_path}"
    warm = _usable(run_wrk(url, script, d.warm_s, d.connections, DRIVER_CORES), point, "warm-up") if d.warm_s else None
    waited = settle(server.pid, d.settle_s) if d.settle_s > 0 else 0.0
    usage = CpuUsage(server.pid)
    if probe is not None:
        probe.start()
    res = _usable(run_wrk(url, script, d.measure_s, d.connections, DRIVER_CORES), point, "measure")
    if probe is not None:
        probe.join()  # it ends with wrk: its few requests are the server's work too
    row = usage.row(res, res.requests + (probe.sent if probe is not None else 0), waited)
    row.pop("driver_cpu_s")
    return {
        **row,
        "statuses": {str(code): n for code, n in sorted(res.statuses.items())},
        "warm_requests": warm.requests if warm else 0,
        "warm_non_2xx": warm.non_2xx if warm else 0,
        "warm_statuses": {str(code): n for code, n in sorted(warm.statuses.items())} if warm else {},
    }


def tasks_target() -> Target:
    """(d) serving the task tool alone: the main bench's (d) keeps its own tools, so no task layer on its path."""
    tools = REPO_ROOT / "bench" / "tools_tasks"
    return dataclasses.replace(
        TARGETS["d"],
        env={**PROJECT_ENV, "TOOLS__DIR": str(tools)},
        async_tool_env={"TOOLS__DIR": str(tools.with_name("tools_tasks_async"))},
    )


def point(name: str, target: Target, ctx: Context, tokens: list[str], probers: int, d: Durations) -> dict[str, Any]:
    """One point on a fresh server; `tokens`: the load's callers, then the completion probe's (`probers`)."""
    server = start(target, ctx, tag=f"-tasks-{name}")
    everyone = [Exchange(MODERN, token) for token in tokens]
    callers, probers_ = everyone[: len(everyone) - probers], everyone[len(everyone) - probers :]
    try:
        wait_first_call(server, target, tokens[0])
        conn = Conn(server.port, target.mcp_path)
        try:
            check(conn, callers[0])
            if name == "poll":
                ids = one_task_each(conn, callers, max(1, task_caps()[1] // 2))
                requests = [get_request(ex, task_id) for ex, task_id in zip(callers, ids, strict=True)]
            else:
                requests = [call_request(ex, "hi", as_task=name == "create") for ex in callers]
        finally:
            conn.close()
        probe = CompletionProbe(server.port, target.mcp_path, probers_, d.measure_s) if name == "create" else None
        row = measure(server, target, requests, name, ctx, d, probe)
        if probe is not None:
            row["completion"] = probe.summary()
            answered = row["warm_requests"] - row["warm_non_2xx"] + row["requests"] - row["non_2xx"]
            row["tasks_created"] = answered + row["completion"]["tasks"] + 1  # + the check's
        conn = Conn(server.port, target.mcp_path)
        try:
            check(conn, callers[0])  # still serving calls and tasks after the run (no slot left behind)
        finally:
            conn.close()
        return row
    except ProtocolError as exc:
        raise BenchFailure(f"{name}: {exc}") from exc
    finally:
        server.stop()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Tasks extension: tasks/get polls and task creation, (d) at its defaults.")
    p.add_argument("--warmup", "--warm", type=float, default=10.0, help="warm-up seconds per point (default 10)")
    p.add_argument("--duration", "--measure", type=float, default=15.0, help="measured seconds per point (default 15)")
    p.add_argument("--rounds", type=int, default=1, help="repeat the points (alternating their order), report medians")
    p.add_argument("--connections", type=int, default=CONNECTIONS, help=f"wrk connections (default {CONNECTIONS})")
    p.add_argument("--points", default=",".join(POINTS), help=f"comma list of points (default {','.join(POINTS)})")
    p.add_argument("--tool", choices=("sync", "async"), default="sync", help="`def echo_task` (default) or `async def`")
    p.add_argument("--settle", type=float, default=0.0, help="wait up to N s per point for other load to drop")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out")
    return p.parse_args(argv)


def _log(msg: str) -> None:
    print(f"[bench-tasks] {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    require_wrk()
    os.environ["BENCH_TOOL"] = args.tool  # async: (d) serves bench/tools_tasks_async (tasks_target)
    points = [name.strip() for name in args.points.split(",") if name.strip()]
    if unknown := [name for name in points if name not in POINTS]:
        raise SystemExit(f"unknown points: {unknown} (known: {', '.join(POINTS)})")
    d = Durations(args.warmup, args.duration, args.connections, 0, 0, args.settle)
    results: dict[str, Any] = {
        "machine": sysinfo.machine(),
        "durations": {
            "warm_s": d.warm_s,
            "measure_s": d.measure_s,
            "connections": d.connections,
            "rounds": args.rounds,
            "settle_s": d.settle_s,
            "tool": args.tool,
            "points": points,
        },
        "server_cores": SERVER_CORES,
        "driver_cores": DRIVER_CORES,
        "task_caps": task_caps(),
        "callers": callers_needed(d.warm_s, d.measure_s, 0),
        "probe_callers": probe_callers(d.measure_s),
        "probe_interval_s": PROBE_INTERVAL_S,
        "failures": [],
    }
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in points}
    with tempfile.TemporaryDirectory(prefix="secure-mcp-bench-") as scratch:  # the run's audit files, then gone
        ctx = Context(args.out, BenchKeys(args.out / "keys"), Path(scratch))
        target = tasks_target()
        if (reason := target.prepare(ctx)) is not None:
            raise SystemExit(f"(d) cannot run: {reason}")
        tokens = target.mint_tokens(ctx, results["callers"] + results["probe_callers"])
        assert tokens, "(d) mints a token per caller"
        results["versions"] = target.versions()
        for rnd in range(1, args.rounds + 1):
            order = points if rnd % 2 else points[::-1]  # ABBA: drift in machine speed favours no point
            for name in order:
                _log(f"round {rnd}/{args.rounds}: {name} ({POINTS[name]}), {results['callers']} callers")
                try:
                    samples[name].append(point(name, target, ctx, tokens, results["probe_callers"], d))
                except Exception as exc:  # one broken point must not lose the others
                    detail = str(exc) if isinstance(exc, BenchFailure) else f"{type(exc).__name__}: {exc}"
                    _log(f"FAILED {name}: {detail}")
                    results["failures"].append(f"round {rnd} {name}: {detail}")
    results["points"] = {name: median(rows) for name, rows in samples.items() if len(rows) == args.rounds}
    results["ratios"] = ratios(results["points"])
    return results


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    return cli.write(results, out_dir, "tasks", "tasks-latest", markdown)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    json_path, md_path = write(results, args.out)
    print(markdown(results))
    _log(f"wrote {json_path} and {md_path}")
    points = results["points"].values()
    refused = sum(r["non_2xx"] + r["warm_non_2xx"] + r.get("completion", {}).get("refused", 0) for r in points)
    if results["failures"] or refused:
        _log(f"{len(results['failures'])} failure(s), {refused} non-2xx response(s): see the table and FAILURES.")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
