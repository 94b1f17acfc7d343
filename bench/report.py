"""Turn the results dict into a console table, a markdown report and ratios."""

from __future__ import annotations

import statistics
from typing import Any

Results = dict[str, Any]

_RATIO_PAIRS = (("d", "a"), ("d", "af"), ("d", "b"), ("d", "c"))


def ratios(results: Results) -> list[dict[str, Any]]:
    """(d) over (a), (af), (b), (c) per protocol: throughput ratio (>1 = d faster), CPU/req ratio (<1 = d cheaper).

    With several rounds, `paired_*` is the median of the per-round ratios: both points of a pair ran minutes apart
    at most, so drift in machine speed between rounds cancels (the ratio of medians mixes rounds)."""
    rows = {(r["target"], r["protocol"]): r for r in results["throughput"] if "rps" in r}
    out = []
    for protocol in results["protocols"]:
        for num, den in _RATIO_PAIRS:
            n, d = rows.get((num, protocol)), rows.get((den, protocol))
            if n and d:
                out.append({
                    "pair": f"({num})/({den})",
                    "protocol": protocol,
                    "rps_ratio": round(n["rps"] / d["rps"], 3),
                    "cpu_per_req_ratio": round(n["cpu_us_per_req"] / d["cpu_us_per_req"], 3),
                    "p99_ratio": round(n["p99_ms"] / d["p99_ms"], 3),
                    "paired_rps_ratio": _paired(n.get("rounds_rps"), d.get("rounds_rps")),
                    "paired_cpu_per_req_ratio": _paired(n.get("rounds_cpu_us_per_req"), d.get("rounds_cpu_us_per_req")),
                })  # fmt: skip
    return out


def _paired(num: list[float] | None, den: list[float] | None) -> float | None:
    if not num or not den or len(num) != len(den) or len(num) < 2:
        return None
    return round(statistics.median(n / d for n, d in zip(num, den, strict=True)), 3)


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _label(results: Results, key: str) -> str:
    return f"({key}) {results['targets'][key]['label']}"


def markdown(results: Results) -> str:
    m = results["machine"]
    d = results["durations"]
    lines = [
        f"Run {m['date_utc']} on {m['nproc']} x {m['cpu_model']}, Python {m['python']}, kernel {m['kernel']}, "
        f"{m['wrk']}; load average at start {m['loadavg_at_start']:.2f}.",
        f"Each point: {d['warm_s']:g} s warm-up + {d['measure_s']:g} s measured, wrk 1 thread x "
        f"{d['connections']} keep-alive connections, the requests spread over {results.get('callers', 1)} callers "
        "(each within the default rate limit, which stays on); "
        f"server pinned to core {results['server_cores']}, "
        f"wrk to core {results['driver_cores']}; {d['rounds']} round(s), medians shown"
        + (f"; waited up to {d['settle_s']:g} s per point for a quiet machine." if d.get("settle_s") else "."),
        "",
        f"### Throughput (tools/call `echo`, {'`async def`' if d.get('tool') == 'async' else '`def`'})",
        "",
    ]
    rows = []
    for r in results["throughput"]:
        name = _label(results, r["target"])
        if "rps" not in r:
            rows.append([name, r["protocol"], "FAILED", *[""] * 7, r.get("error", "")[:80]])
            continue
        rows.append([
            name, r["protocol"], f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
            f"{r['cpu_us_per_req']:.0f}", f"{1e6 / r['cpu_us_per_req']:.0f}", f"{r['rss_mib']:.1f}",
            f"{r['server_cpu_util']:.2f}", f"{r['other_cpu_util']:.2f}",
            " / ".join(f"{x:.0f}" for x in r["rounds_rps"]),
        ])  # fmt: skip
    lines += table(
        [
            "target",
            "protocol",
            "req/s",
            "p50 ms",
            "p99 ms",
            "CPU µs/req",
            "req/s per core",
            "RSS MiB",
            "server CPU",
            "other load",
            "req/s per round",
        ],
        rows,
    )
    lines += [
        "",
        "`req/s per core` = 10⁶ / CPU µs/req (throughput if the server had a whole core to itself); "
        "`server CPU`: cores the server used; `other load`: cores used by everything else on the machine "
        "(not the server, not wrk) during the measurement.",
    ]
    if results["ratios"]:
        lines += ["", "### Ratios", ""]
        lines += table(
            ["pair", "protocol", "req/s ratio", "CPU/req ratio", "p99 ratio", "paired req/s", "paired CPU/req"],
            [[r["pair"], r["protocol"], f"{r['rps_ratio']:.2f}", f"{r['cpu_per_req_ratio']:.2f}",
              f"{r['p99_ratio']:.2f}", _maybe(r.get("paired_rps_ratio")), _maybe(r.get("paired_cpu_per_req_ratio"))]
             for r in results["ratios"]],
        )  # fmt: skip
        lines += ["", "`paired`: the median of the per-round ratios (rounds alternate the target order), which cancels "
                  "drift in machine speed between rounds; `-` with one round."]  # fmt: skip
    if results["cold_start"]:
        lines += ["", "### Cold start (spawn → first successful tools/call, 2025-11-25 incl. initialize)", ""]
        lines += table(
            ["target", "median s", "samples s"],
            [[_label(results, k), f"{v['median_s']:.2f}", ", ".join(f"{s:.2f}" for s in v["samples_s"])]
             for k, v in results["cold_start"].items()],
        )  # fmt: skip
    if results["sessions"]:
        lines += ["", "### Idle stateful sessions (2025-11-25, stateful server)", ""]
        lines += table(
            ["target", "sessions", "RSS before MiB", "RSS after MiB", "KiB/session"],
            [[_label(results, k), str(v["sessions"]), f"{v['rss_before_mib']:.1f}", f"{v['rss_after_mib']:.1f}",
              f"{v['kib_per_session']:.1f}"] for k, v in results["sessions"].items()],
        )  # fmt: skip
    if results["workers"]:
        lines += [
            "",
            f"### 1 vs 2 uvicorn workers ({results['workers_protocol']}, {results['workers_connections']} connections; "
            "server and wrk share cores 0-1)",
            "",
        ]
        rows = []
        for k, v in results["workers"].items():
            one, two = v["1"], v["2"]
            rows.append([
                _label(results, k), f"{one['rps']:.0f}", f"{two['rps']:.0f}", f"{two['rps'] / one['rps']:.2f}",
                f"{one['rss_mib']:.1f}", f"{two['rss_mib']:.1f}",
            ])  # fmt: skip
        lines += table(["target", "1 worker req/s", "2 workers req/s", "scaling", "RSS 1w MiB", "RSS 2w MiB"], rows)
    lines += ["", "### Versions", ""]
    lines += table(
        ["target", "packages"],
        [[_label(results, k), ", ".join(f"{p} {v}" for p, v in t["versions"].items())]
         for k, t in results["targets"].items() if t.get("versions")],
    )  # fmt: skip
    if results["skipped"]:
        lines += ["", "### Skipped", ""] + [f"- {_label(results, k)}: {why}" for k, why in results["skipped"].items()]
    if results["failures"]:
        lines += ["", "### FAILURES", ""] + [f"- {f}" for f in results["failures"]]
    return "\n".join(lines) + "\n"
