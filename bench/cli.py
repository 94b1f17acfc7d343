"""Orchestrates one benchmark run: every target x protocol, then the side measurements."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, sysinfo
from bench.callers import callers_needed
from bench.driver import require_wrk
from bench.keys import BenchKeys
from bench.mcp_http import LEGACY, PROTOCOLS
from bench.scenarios import (
    DRIVER_CORES,
    SERVER_CORES,
    WORKERS_CONNECTION_FACTOR,
    BenchFailure,
    Durations,
    cold_start,
    first,
    session_memory,
    throughput,
    workers_scaling,
)
from bench.targets import REPO_ROOT, TARGETS, Context, Target

EXTRAS = ("cold", "sessions", "workers")
WORKERS_TARGETS = ("a", "d")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="secure-mcp-server benchmark suite (loopback only).")
    p.add_argument("--quick", action="store_true", help="smoke run: ~1 s warm + 2 s measure per point")
    p.add_argument("--warm", type=float, default=10.0, help="warm-up seconds per point (default 10)")
    p.add_argument("--measure", type=float, default=15.0, help="measured seconds per point (default 15)")
    p.add_argument("--rounds", type=int, default=1, help="repeat the target x protocol grid, report medians")
    p.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="wait up to N s before each measurement for other load to drop (shared machines; default 0)",
    )
    p.add_argument("--connections", type=int, default=16, help="wrk keep-alive connections (default 16)")
    p.add_argument(
        "--tool",
        choices=("sync", "async"),
        default="sync",
        help="serve `def echo` (default, as in the SDK's examples: a worker-thread hand-off per call) or `async def`",
    )
    p.add_argument("--targets", default="a,af,b,c,d", help="comma list of target keys (default a,af,b,c,d)")
    p.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma list of protocol versions")
    p.add_argument("--skip", default="", help=f"comma list of extras to skip: {', '.join(EXTRAS)}")
    p.add_argument("--sessions", type=int, default=500, help="idle sessions to open (default 500)")
    p.add_argument("--cold-reps", type=int, default=3, help="cold starts per target (default 3)")
    p.add_argument("--workers-protocol", default=LEGACY, choices=PROTOCOLS)
    p.add_argument("--refresh-fastmcp", action="store_true", help="recreate bench/.venvs/fastmcp with latest fastmcp")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "out")
    args = p.parse_args(argv)
    if args.quick:
        args.warm, args.measure, args.sessions, args.cold_reps = 1.0, 2.0, 100, 1
    return args


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _prepare(
    keys: list[str], ctx: Context, results: dict[str, Any], callers: int
) -> dict[str, tuple[Target, list[str] | None]]:
    ready: dict[str, tuple[Target, list[str] | None]] = {}
    for key in keys:
        target = TARGETS[key]
        results["targets"][key] = {"label": target.label}
        reason = target.prepare(ctx)
        if reason is None:
            try:
                tokens = target.mint_tokens(ctx, callers)
            except Exception as exc:
                reason = f"could not mint tokens: {exc}"
        if reason is not None:
            _log(f"SKIPPING ({key}) {target.label}: {reason}")
            results["skipped"][key] = reason
            continue
        results["targets"][key]["versions"] = target.versions()
        ready[key] = (target, tokens)
    return ready


def _attempt(results: dict[str, Any], what: str, fn: Any, *args: Any) -> Any:
    _log(what)
    try:
        return fn(*args)
    except Exception as exc:  # one broken point must not lose the rest of the run
        detail = str(exc) if isinstance(exc, BenchFailure) else f"{type(exc).__name__}: {exc}"
        _log(f"FAILED {what}: {detail}")
        results["failures"].append(f"{what}: {detail}")
        return None


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-field median over rounds; any failed round fails the point."""
    if any("error" in r for r in rows):
        return {"error": "failed (see failures)"}
    merged = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    merged["rounds_rps"] = [r["rps"] for r in rows]
    merged["rounds_cpu_us_per_req"] = [r["cpu_us_per_req"] for r in rows]
    merged["non_2xx"] = sum(r["non_2xx"] for r in rows)
    merged["requests"] = sum(r["requests"] for r in rows)
    return merged


def run(args: argparse.Namespace) -> dict[str, Any]:
    require_wrk()
    keys = [k.strip() for k in args.targets.split(",") if k.strip()]
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := [k for k in keys if k not in TARGETS] + [p for p in protocols if p not in PROTOCOLS]:
        raise SystemExit(f"unknown target/protocol: {unknown}")
    durations = Durations(args.warm, args.measure, args.connections, args.cold_reps, args.sessions, args.settle)
    os.environ["BENCH_TOOL"] = args.tool  # every target's environment is built from ours (bench/servers/common.py)
    with tempfile.TemporaryDirectory(prefix="secure-mcp-bench-") as scratch:  # the run's audit files, then gone
        ctx = Context(args.out, BenchKeys(args.out / "keys"), Path(scratch), refresh_fastmcp=args.refresh_fastmcp)
        return _run(args, ctx, keys, protocols, skip, durations)


def _run(
    args: argparse.Namespace, ctx: Context, keys: list[str], protocols: list[str], skip: set[str], durations: Durations
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": sysinfo.machine(),
        "durations": {
            "warm_s": args.warm,
            "measure_s": args.measure,
            "connections": args.connections,
            "rounds": args.rounds,
            "settle_s": args.settle,
            "tool": args.tool,
        },
        "server_cores": SERVER_CORES,
        "driver_cores": DRIVER_CORES,
        "protocols": protocols,
        "workers_protocol": args.workers_protocol,
        "workers_connections": args.connections * WORKERS_CONNECTION_FACTOR,
        "targets": {},
        "skipped": {},
        "failures": [],
        "throughput": [],
        "cold_start": {},
        "sessions": {},
        "workers": {},
    }
    results["callers"] = callers_needed(args.warm, args.measure, args.sessions)
    ready = _prepare(keys, ctx, results, results["callers"])
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rnd in range(1, args.rounds + 1):
        # Every other round runs the targets in reverse (ABBA), so slow drift in machine speed, common on a shared
        # VM, does not favour whichever target runs first; paired ratios (see report.ratios) compare within rounds.
        order = list(ready.items()) if rnd % 2 else list(reversed(ready.items()))
        for protocol in protocols:
            for key, (target, tokens) in order:
                what = f"round {rnd}/{args.rounds}: ({key}) {target.label} @ {protocol}"
                row = _attempt(results, what, throughput, target, ctx, protocol, tokens, durations)
                samples.setdefault((key, protocol), []).append(row or {"error": "failed"})
    results["throughput"] = [
        {"target": key, "protocol": protocol, **_median_row(samples[key, protocol])}
        for protocol in protocols
        for key in ready
    ]
    for key, (target, tokens) in ready.items():
        if "cold" not in skip:
            v = _attempt(results, f"({key}) cold start", cold_start, target, ctx, first(tokens), args.cold_reps)
            if v:
                results["cold_start"][key] = v
        if "sessions" not in skip and target.stateful_env is not None:
            v = _attempt(results, f"({key}) idle sessions", session_memory, target, ctx, tokens, args.sessions)
            if v:
                results["sessions"][key] = v
        if "workers" not in skip and key in WORKERS_TARGETS:
            what = f"({key}) 1 vs 2 workers"
            v = _attempt(results, what, workers_scaling, target, ctx, args.workers_protocol, tokens, durations)
            if v:
                results["workers"][key] = v
    results["ratios"] = report.ratios(results)
    return results


def write(
    results: dict[str, Any],
    out_dir: Path,
    name: str = "results",
    latest: str = "latest",
    render: Callable[[dict[str, Any]], str] = report.markdown,
) -> tuple[Path, Path]:
    """`{name}-{stamp}.json` and `.md` in `out_dir`, copied to `{latest}.json` and `.md`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path, md_path = out_dir / f"{name}-{stamp}.json", out_dir / f"{name}-{stamp}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path.write_text(render(results))
    for src, copy in ((json_path, f"{latest}.json"), (md_path, f"{latest}.md")):
        (out_dir / copy).write_text(src.read_text())
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    json_path, md_path = write(results, args.out)
    print(report.markdown(results))
    _log(f"wrote {json_path} and {md_path}")
    if results["failures"]:
        _log(f"{len(results['failures'])} FAILURE(S): the numbers above are incomplete; see FAILURES.")
        return 1
    return 0
