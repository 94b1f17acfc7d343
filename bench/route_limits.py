"""What slowapi costs on a FastAPI route: the same route with and without `@limiter.limit`, counted in Redis.

    uv run python bench/route_limits.py                      # 3 rounds, 3 s warm-up + 10 s measured per point
    uv run python bench/route_limits.py --quick              # 1 round, 1 s + 2 s
    uv run python bench/route_limits.py --strategy fixed-window --storage memory

One `uvicorn app.main:app` (development mode, a standalone dev issuer, audit to a file) serves two routes from a
ROUTES__DIR of the run's own: `GET /api/bench/plain` and `GET /api/bench/limited`, identical but for
`@limiter.limit(LIMIT)`, both behind `Caller` (the same token validation, the same audit record). Rate-limit settings
are the defaults (moving window, fail_open) but for RATE_LIMIT__STORAGE_URI, a redis-server this script starts.
LIMIT is high enough that one load-generator token is never refused within a run (a 429 fails the run): the cost is
counted on every request all the same. The server is pinned to core 0; wrk and redis-server to core 1. Rounds
alternate the order of the two routes (ABBA); the report gives medians over rounds and the per-request difference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2

from bench.procs import Server, cpu_seconds, free_port, spawn, wait_until
from bench.sysinfo import machine, machine_busy_seconds

REPO = Path(__file__).resolve().parent.parent
LIMIT = "1000000/minute"  # never reached by one token in a run (about 2,000 req/s for ~1 minute at most)
UVICORN_FLAGS = ["--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
UVICORN_FLAGS += ["--log-level", "warning"]  # as bench/targets.py runs every target
ROUTES = f'''"""Bench routes: identical but for the rate limit (bench/route_limits.py)."""

from fastapi import APIRouter, Request

from app import Caller, limiter

router = APIRouter(prefix="/api/bench")


@router.get("/plain")
async def plain(request: Request, caller: Caller) -> dict[str, str]:
    return {{"ok": "yes"}}


@router.get("/limited")
@limiter.limit("{LIMIT}")
async def limited(request: Request, caller: Caller) -> dict[str, str]:
    return {{"ok": "yes"}}
'''
WRK_LUA = """\
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer {token}"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=float, default=3.0, help="warm-up seconds per point")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per point")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--strategy", default=None, help="RATE_LIMIT__STRATEGY (default: the setting's default)")
    parser.add_argument("--storage", choices=["redis", "memory"], default="redis")
    parser.add_argument("--app", default="app.main:app", help="the ASGI import string uvicorn serves")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 s warm-up + 2 s per point")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.warm, args.seconds = 1, 1.0, 2.0
    for tool in ("wrk", "taskset") + (("redis-server",) if args.storage == "redis" else ()):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install wrk redis-server util-linux)")

    scratch = Path(tempfile.mkdtemp(prefix="bench-route-limits-"))
    started: list[Server] = []
    try:
        routes = scratch / "routes"
        routes.mkdir()
        (routes / "bench_routes.py").write_text(ROUTES)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RATE_LIMIT__", "ROUTES__", "AUDIT__"))}
        env |= {
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "APP_ENV": "development",
            "DEV_ISSUER__EMBEDDED": "false",
            "DEV_ISSUER__PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
            "AUDIT__SINK": f"file:{scratch}/audit.jsonl",
            "ROUTES__DIR": str(routes),
        }
        if args.strategy:
            env["RATE_LIMIT__STRATEGY"] = args.strategy
        redis: Server | None = None
        if args.storage == "redis":
            port = free_port()
            redis_argv = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
            redis_argv += ["--dir", str(scratch), "--save", "", "--appendonly", "no"]
            redis = spawn(redis_argv, env, scratch, "1", port, scratch / "redis.log")
            started.append(redis)
            env["RATE_LIMIT__STORAGE_URI"] = f"redis://127.0.0.1:{port}/0"
        issuer = spawn([sys.executable, "-m", "app.devissuer", "serve"], env, REPO, "1", 0, scratch / "iss.log")
        started.append(issuer)
        token = _token(env)
        port = free_port()
        server = spawn(
            [sys.executable, "-m", "uvicorn", args.app, "--port", str(port), *UVICORN_FLAGS],
            env,
            REPO,
            "0",
            port,
            scratch / "server.log",
        )
        started.append(server)
        base = f"http://127.0.0.1:{port}"
        if not wait_until(lambda: _answers(f"{base}/healthz", token), 60, 0.1):
            raise SystemExit(f"the server did not start:\n{server.log_tail()}")
        for path in ("/api/bench/plain", "/api/bench/limited"):
            if not _answers(base + path, token):
                raise SystemExit(f"{path} does not answer 200 with the token:\n{server.log_tail()}")
        script = scratch / "get.lua"
        script.write_text(WRK_LUA.format(token=token))

        points: dict[str, list[dict[str, float]]] = {"plain": [], "limited": []}
        for round_no in range(args.rounds):
            order = ["plain", "limited"] if round_no % 2 == 0 else ["limited", "plain"]
            for name in order:
                url = f"{base}/api/bench/{name}"
                _wrk(url, script, args.warm, args.connections)
                points[name].append(_measure(server, redis, url, script, args.seconds, args.connections))
        _report(points, args, env)
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _token(env: dict[str, str]) -> str:
    argv = [sys.executable, "-m", "app.devissuer", "token", "--scopes", "mcp.read"]
    deadline = time.monotonic() + 60
    while True:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False)  # noqa: S603
        token = proc.stdout.strip()
        if proc.returncode == 0 and token.count(".") == 2:
            return token
        if time.monotonic() > deadline:
            raise SystemExit(f"token command failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        time.sleep(0.5)


def _answers(url: str, token: str) -> bool:
    try:
        return httpx2.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200
    except httpx2.TransportError:
        return False


def _wrk(url: str, script: Path, seconds: float, connections: int) -> dict[str, float]:
    argv = [shutil.which("taskset") or "taskset", "-c", "1", shutil.which("wrk") or "wrk", "-t1", f"-c{connections}"]
    argv += [f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout  # noqa: S603
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result: dict[str, float] = json.loads(line.removeprefix("BENCH_JSON "))
    if result["status_errors"] or result["socket_errors"]:
        raise SystemExit(f"{url}: {result['status_errors']} non-2xx, {result['socket_errors']} socket errors")
    return result


def _measure(
    server: Server, redis: Server | None, url: str, script: Path, seconds: float, connections: int
) -> dict[str, float]:
    cpu, redis_cpu, busy = cpu_seconds(server.pid), cpu_seconds(redis.pid) if redis else 0.0, machine_busy_seconds()
    result = _wrk(url, script, seconds, connections)
    cpu = cpu_seconds(server.pid) - cpu
    redis_cpu = (cpu_seconds(redis.pid) - redis_cpu) if redis else 0.0
    busy = machine_busy_seconds() - busy
    requests, wall = result["requests"], result["duration_us"] / 1e6
    return {
        "rps": requests / wall,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "cpu_us": cpu * 1e6 / requests,
        "redis_cpu_us": redis_cpu * 1e6 / requests,
        "other_cores": max(0.0, busy - cpu - redis_cpu) / wall,  # wrk's share is in it (about 0.05)
    }


def _report(points: dict[str, list[dict[str, float]]], args: argparse.Namespace, env: dict[str, str]) -> None:
    def median(name: str, key: str) -> float:
        return statistics.median(p[key] for p in points[name])

    facts = machine()
    strategy = env.get("RATE_LIMIT__STRATEGY", "moving-window (default)")
    print(f"machine: {facts['nproc']} cores, {facts['cpu_model']}, kernel {facts['kernel']}, Python {facts['python']}")
    print(f"wrk: {facts['wrk']}; {args.rounds} round(s), {args.warm:g} s warm-up + {args.seconds:g} s per point,")
    print(f"{args.connections} connections; storage {args.storage}, strategy {strategy}, limit {LIMIT}")
    print()
    print("| route | req/s | p50 ms | p99 ms | server CPU µs/req | redis CPU µs/req | other load (cores) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("plain", "limited"):
        print(
            f"| `{name}` | {median(name, 'rps'):,.0f} | {median(name, 'p50_ms'):.2f} | {median(name, 'p99_ms'):.2f} | "
            f"{median(name, 'cpu_us'):.0f} | {median(name, 'redis_cpu_us'):.0f} | {median(name, 'other_cores'):.2f} |"
        )
    paired = [lim["cpu_us"] - pl["cpu_us"] for pl, lim in zip(points["plain"], points["limited"], strict=True)]
    ratios = [lim["rps"] / pl["rps"] for pl, lim in zip(points["plain"], points["limited"], strict=True)]
    print()
    print(
        f"@limiter.limit costs {statistics.median(paired):.0f} µs of server CPU per request (median of per-round "
        f"differences: {', '.join(f'{d:.0f}' for d in paired)}); limited/plain req/s "
        f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}); "
        f"p50 {median('limited', 'p50_ms') - median('plain', 'p50_ms'):+.2f} ms, "
        f"p99 {median('limited', 'p99_ms') - median('plain', 'p99_ms'):+.2f} ms"
    )
    print("BENCH_JSON " + json.dumps({"machine": facts, "points": points, "strategy": strategy}, default=str))


if __name__ == "__main__":
    raise SystemExit(main())
