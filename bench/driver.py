"""Load driver: wrk (C, event loop, one thread) with a generated Lua script.

wrk is far cheaper per request than any Python server here, so pinned to its own core
it is not the bottleneck. Each run repeats one tools/call over `connections` keep-alive
connections, from each caller in turn; the Lua `done()` hook prints exact counts and percentiles.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.mcp_http import Request

_LUA = """\
wrk.method = "POST"
-- One header set per caller, used in turn, and a fresh JSON-RPC id per request: in a session (the app's default for
-- 2025-11-25) ids in flight must differ, and each caller stays within its own rate limit (bench/callers.py).
local callers = {{
{callers}
}}
local head, tail, n = [==[{head}]==], [==[{tail}]==], 0
function request()
  n = n + 1
  return wrk.format(nil, nil, callers[(n % #callers) + 1], head .. n .. tail)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {{"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""

_LUA_EACH = """\
wrk.method = "POST"
-- One request per caller (headers and body: e.g. tasks/get of the caller's own task), in turn, each with a fresh
-- JSON-RPC id; every response outside 2xx is counted by status, and done() reports the counts.
local callers = {{
{callers}
}}
local n = 0
statuses = {{}}
function request()
  n = n + 1
  local c = callers[(n % #callers) + 1]
  return wrk.format(nil, nil, c[1], c[2] .. n .. c[3])
end
function response(status, headers, body)
  if status < 200 or status > 299 then statuses[status] = (statuses[status] or 0) + 1 end
end
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local counts, parts, e = {{}}, {{}}, summary.errors
  for _, t in ipairs(threads) do
    for code, count in pairs(t:get("statuses")) do counts[code] = (counts[code] or 0) + count end
  end
  for code, count in pairs(counts) do parts[#parts + 1] = string.format('"%d":%d', code, count) end
  io.write(string.format(
    'BENCH_JSON {{"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,"statuses":{{%s}}}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    table.concat(parts, ",")))
end
"""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    """Responses outside 2xx by HTTP status (scripts from `write_script_each` only)."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk not found: install it with `apt-get install -y wrk` (Debian package `wrk`).")
    return path


def _headers_table(req: Request) -> str:
    if any('"' in k + v or "\\" in k + v for k, v in req.headers.items()):
        raise ValueError("request headers cannot be embedded in the wrk Lua script")
    return "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in req.headers.items()) + "}"


def write_script(requests: list[Request], path: Path) -> Path:
    """A script sending the callers' requests in turn; they must differ only in their headers."""
    if not requests or any(req.body != requests[0].body for req in requests):
        raise ValueError("the callers' requests must share one body")
    body = requests[0].body
    tables = [f"  {_headers_table(req)}," for req in requests]
    head, found, tail = body.partition('"id":1,')
    if not found or "]==]" in body:
        raise ValueError('the request body has no "id":1 to number, or cannot be embedded')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_LUA.format(callers="\n".join(tables), head=head + '"id":', tail="," + tail))
    return path


def write_script_each(requests: list[Request], path: Path) -> Path:
    """A script sending each caller's own request (headers and body) in turn, counting responses by status."""
    rows = []
    for req in requests:
        head, found, tail = req.body.partition('"id":1,')
        if not found or "]==]" in req.body:
            raise ValueError('a request body has no "id":1 to number, or cannot be embedded')
        rows.append(f'  {{{_headers_table(req)}, [==[{head}"id":]==], [==[,{tail}]==]}},')
    if not rows:
        raise ValueError("no requests")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_LUA_EACH.format(callers="\n".join(rows)))
    return path


def run_wrk(url: str, script: Path, seconds: float, connections: int, cores: str) -> LoadResult:
    """One closed-loop run; returns wrk's own counts (never extrapolated)."""
    argv = [
        shutil.which("taskset") or "/usr/bin/taskset", "-c", cores, require_wrk(),
        "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout  # noqa: S603
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    d = json.loads(line.removeprefix("BENCH_JSON "))
    return LoadResult(
        requests=d["requests"],
        seconds=d["duration_us"] / 1e6,
        non_2xx=d["status_errors"],
        socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        mean_ms=d["mean_us"] / 1000,
        statuses={int(code): count for code, count in d.get("statuses", {}).items()},
    )
