"""The report of `bench/tasks.py`: medians over rounds, the ratios against the synchronous call, a markdown table in
the format of bench/report.py's."""

from __future__ import annotations

import statistics
from typing import Any

from bench.mcp_http import MODERN
from bench.report import table

POINTS = {
    "sync": "tools/call, synchronous (no extension declared)",
    "create": "tools/call as a task (CreateTaskResult only)",
    "poll": "tasks/get of a completed task",
}
RATIOS = (("create", "sync"), ("poll", "sync"))


def median(rows: list[dict[str, Any]]) -> dict[str, Any]:
    numeric = [k for k, v in rows[0].items() if isinstance(v, int | float)]
    merged: dict[str, Any] = {k: statistics.median(r[k] for r in rows) for k in numeric}
    for k in ("requests", "non_2xx", "warm_requests", "warm_non_2xx"):
        merged[k] = sum(r[k] for r in rows)
    for k in ("statuses", "warm_statuses"):
        merged[k] = {c: sum(r[k].get(c, 0) for r in rows) for c in sorted({c for r in rows for c in r[k]})}
    if all("completion" in r for r in rows):
        done = [r["completion"] for r in rows]
        merged["completion"] = {k: statistics.median(c.get(k, 0) for c in done) for k in ("p50_ms", "p90_ms")}
        merged["completion"] |= {
            "max_ms": max(c.get("max_ms", 0) for c in done),
            "tasks": sum(c["tasks"] for c in done),
        }
        merged["completion"]["refused"] = sum(sum(c["refused"].values()) for c in done)
    merged["rounds_rps"] = [r["rps"] for r in rows]
    merged["rounds_cpu_us_per_req"] = [r["cpu_us_per_req"] for r in rows]
    return merged


def _paired(num: list[float], den: list[float]) -> float | None:
    return round(statistics.median(n / d for n, d in zip(num, den, strict=True)), 3) if len(num) > 1 else None


def ratios(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for num, den in RATIOS:
        n, d = rows.get(num), rows.get(den)
        if n and d:
            out.append({
                "pair": f"{num} / {den}",
                "rps_ratio": round(n["rps"] / d["rps"], 3),
                "cpu_per_req_ratio": round(n["cpu_us_per_req"] / d["cpu_us_per_req"], 3),
                "cpu_us_per_req_delta": round(n["cpu_us_per_req"] - d["cpu_us_per_req"], 1),
                "p50_ratio": round(n["p50_ms"] / d["p50_ms"], 3),
                "p99_ratio": round(n["p99_ms"] / d["p99_ms"], 3),
                "paired_rps_ratio": _paired(n["rounds_rps"], d["rounds_rps"]),
                "paired_cpu_per_req_ratio": _paired(n["rounds_cpu_us_per_req"], d["rounds_cpu_us_per_req"]),
            })  # fmt: skip
    return out


def _refused(r: dict[str, Any]) -> str:
    if not r["non_2xx"] and not r["warm_non_2xx"]:
        return "0"
    by_status = ", ".join(f"{c}: {n}" for c, n in r["statuses"].items()) or "-"
    warm = f"; warm-up {r['warm_non_2xx']}" if r["warm_non_2xx"] else ""
    return f"⚠ **{r['non_2xx']} of {r['requests']}** ({by_status}){warm}"


def markdown(results: dict[str, Any]) -> str:
    m, d, (per_caller, overall) = results["machine"], results["durations"], results["task_caps"]
    tool = "`async def echo_task`" if d["tool"] == "async" else "`def echo_task`"
    lines = [
        f"Run {m['date_utc']} on {m['nproc']} x {m['cpu_model']}, Python {m['python']}, kernel {m['kernel']}, "
        f"{m['wrk']}; load average at start {m['loadavg_at_start']:.2f}.",
        f"(d) project at {MODERN}, {tool}; each point on a fresh server: {d['warm_s']:g} s warm-up + "
        f"{d['measure_s']:g} s measured, wrk 1 thread x {d['connections']} keep-alive connections, the requests spread "
        f"over {results['callers']} callers in turn (each within the default rate limit, which stays on, and holding "
        f"at most one task at a time; TASKS__MAX_PER_PRINCIPAL {per_caller} and TASKS__MAX_ACTIVE {overall} at their "
        f"defaults); server pinned to core {results['server_cores']}, wrk to core {results['driver_cores']}; "
        f"{d['rounds']} round(s), medians shown.",
        "",
        "### Tasks: poll throughput and creation overhead",
        "",
    ]
    rows = []
    for name in d["points"]:
        label, r = POINTS[name], results["points"].get(name)
        if r is None:
            rows.append([f"`{name}`: {label}", "FAILED", *[""] * 9])
            continue
        rows.append([
            f"`{name}`: {label}", f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
            f"{r['cpu_us_per_req']:.0f}", f"{1e6 / r['cpu_us_per_req']:.0f}", f"{r['rss_mib']:.1f}",
            f"{r['server_cpu_util']:.2f}", f"{r['other_cpu_util']:.2f}", _refused(r),
            " / ".join(f"{x:.0f}" for x in r["rounds_rps"]),
        ])  # fmt: skip
    headers = ["point", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "req/s per core", "RSS MiB", "server CPU"]
    lines += table([*headers, "other load", "non-2xx", "req/s per round"], rows)
    lines += [
        "",
        "`non-2xx`: responses outside 2xx in the measurement, by HTTP status (429: a per-caller cap, 503: the overall "
        "one); ⚠ marks a point whose numbers mix refusals with answers. `req/s per core` = 10⁶ / CPU µs/req. "
        "`create`'s p50/p99 are the creation round trip only; its CPU µs/req includes the task's run, which follows "
        "on the same core (as `sync`'s includes the tool's run): the whole cost of a task, created and done.",
    ]
    done = results["points"].get("create", {}).get("completion")
    if done and done["tasks"]:
        lines += [
            "",
            f"Creation → completed during the `create` measurement (the server's `createdAt` → `lastUpdatedAt` of "
            f"{done['tasks']} probe tasks, one every {results['probe_interval_s']:g} s from "
            f"{results['probe_callers']} callers of their own): p50 {done['p50_ms']:.0f} ms, p90 {done['p90_ms']:.0f} "
            f"ms, max {done['max_ms']:.0f} ms; a task holds its TASKS__MAX_ACTIVE slot that long. Probe creations "
            f"refused: {done['refused']}.",
        ]
    if results["ratios"]:
        lines += ["", "### Ratios", ""]
        lines += table(
            ["pair", "req/s ratio", "CPU/req ratio", "CPU µs/req Δ", "p50 ratio", "p99 ratio", "paired req/s",
             "paired CPU/req"],
            [[r["pair"], f"{r['rps_ratio']:.2f}", f"{r['cpu_per_req_ratio']:.2f}", f"{r['cpu_us_per_req_delta']:+.0f}",
              f"{r['p50_ratio']:.2f}", f"{r['p99_ratio']:.2f}",
              *("-" if v is None else f"{v:.2f}" for v in (r["paired_rps_ratio"], r["paired_cpu_per_req_ratio"]))]
             for r in results["ratios"]],
        )  # fmt: skip
        lines += [
            "",
            "`create / sync`: the overhead of answering with a task handle instead of the result (the run itself "
            "comes after the answer, on the same core); `paired`: the median of per-round ratios.",
        ]
    if results["failures"]:
        lines += ["", "### FAILURES", ""] + [f"- {f}" for f in results["failures"]]
    return "\n".join(lines) + "\n"
