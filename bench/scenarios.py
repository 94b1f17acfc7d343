"""The measurements: steady throughput, cold start, idle-session memory, 1 vs 2 workers."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

from bench import procs, sysinfo
from bench.driver import LoadResult, run_wrk, write_script
from bench.mcp_http import LEGACY, Conn, Exchange, ProtocolError, check_tools_call, open_exchange, tools_call_request
from bench.targets import REPO_ROOT, Context, Target

SERVER_CORES = "0"
DRIVER_CORES = "1"


@dataclass(frozen=True)
class Durations:
    warm_s: float
    measure_s: float
    connections: int
    cold_start_reps: int
    sessions: int
    settle_s: float = 0.0
    """Wait up to this long before each measurement for background load to drop below SETTLE_LOAD."""


SETTLE_LOAD = 0.25
"""Cores used by other processes below which the machine counts as quiet."""


def background_load(server_pid: int, window_s: float = 0.5) -> float:
    """Cores used by everything except the (idle) server over `window_s`."""
    busy0, srv0 = sysinfo.machine_busy_seconds(), procs.cpu_seconds(server_pid)
    time.sleep(window_s)
    return (sysinfo.machine_busy_seconds() - busy0 - (procs.cpu_seconds(server_pid) - srv0)) / window_s


def settle(server_pid: int, max_wait_s: float) -> float:
    """Wait (bounded) for a quiet moment; returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait_s and background_load(server_pid) > SETTLE_LOAD:
        pass
    return time.monotonic() - t0


class BenchFailure(RuntimeError):
    """A run that must not be reported as a number (errors, non-2xx, server died)."""


def start(
    target: Target,
    ctx: Context,
    *,
    cores: str = SERVER_CORES,
    workers: int = 1,
    stateful: bool = False,
    scaling: bool = False,
    tag: str = "",
) -> procs.Server:
    port = procs.free_port()
    log = ctx.out_dir / "logs" / f"{target.key}-{target.label}{tag}-w{workers}.log"
    env = target.environ(ctx, port, stateful, scaling)
    return procs.spawn(target.argv(port, workers), env, REPO_ROOT, cores, port, log)


def wait_first_call(
    server: procs.Server, target: Target, token: str | None, t0: float | None = None, timeout: float = 60.0
) -> float:
    """Poll until a 2025-11-25 initialize + tools/call succeeds; returns seconds since `t0` (default: now)."""
    t0 = time.perf_counter() if t0 is None else t0
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not server.alive():
            raise BenchFailure(f"{target.label} exited during startup:\n{server.log_tail()}")
        conn = Conn(server.port, target.mcp_path, timeout=timeout)
        try:
            check_tools_call(conn, open_exchange(conn, LEGACY, token))
            return time.perf_counter() - t0
        except (ConnectionError, OSError):
            time.sleep(0.002)
        except ProtocolError as exc:
            raise BenchFailure(f"{target.label} answered, but not with a valid result: {exc}") from exc
        finally:
            conn.close()
    raise BenchFailure(f"{target.label} did not answer tools/call within {timeout:.0f}s:\n{server.log_tail()}")


def verify(server: procs.Server, target: Target, protocol: str, token: str | None) -> Exchange:
    """Check one real tools/call at `protocol` before measuring; returns the exchange to replay."""
    conn = Conn(server.port, target.mcp_path)
    try:
        ex = open_exchange(conn, protocol, token)
        check_tools_call(conn, ex)
        return ex
    except ProtocolError as exc:
        raise BenchFailure(f"{target.label} @ {protocol}: {exc}") from exc
    finally:
        conn.close()


def first(tokens: list[str] | None) -> str | None:
    """The token of the first caller (the one that checks the server before and after a run)."""
    return tokens[0] if tokens else None


def open_callers(server: procs.Server, target: Target, protocol: str, tokens: list[str] | None) -> list[Exchange]:
    """One exchange per caller (at 2025-11-25 each runs its own handshake: its own session where there are
    sessions), so the load spreads over every caller, each within its own rate limit (bench/callers.py)."""
    conn = Conn(server.port, target.mcp_path)
    try:
        return [open_exchange(conn, protocol, token) for token in (tokens or [None])]
    except ProtocolError as exc:
        raise BenchFailure(f"{target.label} @ {protocol}: opening the callers' exchanges: {exc}") from exc
    finally:
        conn.close()


def _load(
    server: procs.Server, target: Target, callers: list[Exchange], ctx: Context, d: Durations, driver_cores: str
) -> dict[str, Any]:
    protocol = callers[0].protocol
    requests = [tools_call_request(ex) for ex in callers]
    script = write_script(requests, ctx.out_dir / "wrk" / f"{target.key}-{protocol}.lua")
    url = f"http://127.0.0.1:{server.port}{target.mcp_path}"
    if d.warm_s > 0:
        _checked(run_wrk(url, script, d.warm_s, d.connections, driver_cores), target, protocol, "warm-up")
    waited = settle(server.pid, d.settle_s) if d.settle_s > 0 else 0.0
    usage = CpuUsage(server.pid)
    res = _checked(run_wrk(url, script, d.measure_s, d.connections, driver_cores), target, protocol, "measure")
    row = usage.row(res, res.requests, waited)
    return {
        **row,
        "mean_ms": round(res.mean_ms, 3),
        "driver_cpu_util": round(row.pop("driver_cpu_s") / res.seconds, 3),
        "seconds": round(res.seconds, 2),
        "socket_errors": res.socket_errors,
    }


class CpuUsage:
    """CPU counters from the start of a measurement: the server's, the driver's (wrk) and the rest of the machine's."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu0, self.busy0 = procs.cpu_seconds(pid), sysinfo.machine_busy_seconds()
        self.drv0 = sysinfo.children_cpu_seconds()

    def row(self, res: LoadResult, served: int, waited: float) -> dict[str, Any]:
        """What every measured point reports; `served`: the requests the server answered (wrk's, and any others)."""
        cpu = procs.cpu_seconds(self.pid) - self.cpu0
        driver_cpu = sysinfo.children_cpu_seconds() - self.drv0
        other_cpu = sysinfo.machine_busy_seconds() - self.busy0 - cpu - driver_cpu
        return {
            "rps": round(res.rps, 1),
            "p50_ms": res.p50_ms,
            "p90_ms": res.p90_ms,
            "p99_ms": res.p99_ms,
            "cpu_us_per_req": round(cpu / served * 1e6, 1),
            "server_cpu_util": round(cpu / res.seconds, 3),
            "rss_mib": round(procs.rss_mib(self.pid), 1),
            "other_cpu_util": round(max(0.0, other_cpu) / res.seconds, 3),
            "settle_wait_s": round(waited, 1),
            "requests": res.requests,
            "non_2xx": res.non_2xx,
            "driver_cpu_s": driver_cpu,
        }


def _checked(res: LoadResult, target: Target, protocol: str, phase: str) -> LoadResult:
    if res.non_2xx or res.socket_errors or res.requests == 0:
        raise BenchFailure(
            f"{target.label} @ {protocol} ({phase}): {res.non_2xx} non-2xx responses, "
            f"{res.socket_errors} socket errors in {res.requests} requests: refusing to report"
        )
    return res


def throughput(target: Target, ctx: Context, protocol: str, tokens: list[str] | None, d: Durations) -> dict[str, Any]:
    """One steady point. At 2025-11-25 every target keeps sessions (one per caller), as (d) does by default, so the
    comparison is like for like: a stateless server would build a transport and a session per request instead."""
    server = start(target, ctx, stateful=protocol == LEGACY, tag=f"-{protocol}")
    try:
        wait_first_call(server, target, first(tokens))
        verify(server, target, protocol, first(tokens))
        result = _load(server, target, open_callers(server, target, protocol, tokens), ctx, d, DRIVER_CORES)
        verify(server, target, protocol, first(tokens))  # still healthy after the run
        return result
    finally:
        server.stop()


WORKERS_CONNECTION_FACTOR = 1
"""Both runs get the steady run's connections, so 1 and 2 workers see the same offered load."""


def workers_scaling(
    target: Target, ctx: Context, protocol: str, tokens: list[str] | None, d: Durations
) -> dict[str, Any]:
    """Same load against 1 and 2 uvicorn workers. Both cores are shared by server and driver here."""
    out: dict[str, dict[str, Any]] = {}
    d = replace(d, connections=d.connections * WORKERS_CONNECTION_FACTOR)
    for workers in (1, 2):
        server = start(target, ctx, cores="0,1", workers=workers, scaling=True, tag=f"-{protocol}-scaling")
        try:
            wait_first_call(server, target, first(tokens))
            verify(server, target, protocol, first(tokens))
            out[str(workers)] = _load(server, target, open_callers(server, target, protocol, tokens), ctx, d, "0,1")
        finally:
            server.stop()
    return out


def cold_start(target: Target, ctx: Context, token: str | None, reps: int) -> dict[str, Any]:
    """Process spawn -> first successful tools/call (2025-11-25: initialize + tools/call)."""
    samples = []
    for i in range(reps):
        t0 = time.perf_counter()
        server = start(target, ctx, tag=f"-cold{i}")
        try:
            samples.append(wait_first_call(server, target, token, t0=t0))
        finally:
            server.stop()
    return {"median_s": round(statistics.median(samples), 3), "samples_s": [round(s, 3) for s in samples]}


def session_memory(target: Target, ctx: Context, tokens: list[str] | None, n: int) -> dict[str, Any]:
    """RSS growth per idle stateful 2025-11-25 session (initialize + initialized, then left open), the sessions
    spread over the callers as clients would be."""
    token = first(tokens)
    server = start(target, ctx, stateful=True, tag="-stateful")
    try:
        wait_first_call(server, target, token)
        conn = Conn(server.port, target.mcp_path)
        try:
            for i in range(20):  # warm lazy imports and allocator pools before the baseline
                check_tools_call(conn, open_exchange(conn, LEGACY, tokens[i % len(tokens)] if tokens else None))
            time.sleep(0.5)
            rss0 = procs.rss_mib(server.pid)
            for i in range(n):
                ex = open_exchange(conn, LEGACY, tokens[i % len(tokens)] if tokens else None)
                if not ex.session_id:
                    raise BenchFailure(f"{target.label}: stateful server returned no Mcp-Session-Id")
            time.sleep(1.0)
            rss1 = procs.rss_mib(server.pid)
        finally:
            conn.close()
        return {
            "sessions": n,
            "rss_before_mib": round(rss0, 1),
            "rss_after_mib": round(rss1, 1),
            "kib_per_session": round((rss1 - rss0) * 1024 / n, 1),
        }
    finally:
        server.stop()
