"""CPU per sync-tool hand-off: the SDK's `anyio.to_thread.run_sync` against this server's pool (app/server/threads.py).

`taskset -c 1 uv run python bench/handoff.py` runs a trivial sync function through each, `--concurrency` calls at a
time on one uvloop, alternating the two `--reps` times, and prints the median CPU µs per call (process CPU, so the
worker threads count). Not a test, and not part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio.to_thread

from app.server.threads import ToolThreads


def echo(text: str) -> str:
    return text


async def cpu_per_call(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> float:
    async def worker() -> None:
        for _ in range(calls // concurrency):
            await call()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / calls * 1e6


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    pool = ToolThreads(40)
    pooled = pool.serve(echo)
    contenders: dict[str, Callable[[], Awaitable[Any]]] = {
        "anyio.to_thread (SDK)": lambda: anyio.to_thread.run_sync(functools.partial(echo, text="hi")),
        "ToolThreads (app/server/threads.py)": lambda: pooled(text="hi"),
    }
    for call in contenders.values():  # warm-up: threads started, code paths specialised
        await cpu_per_call(call, args.calls, args.concurrency)
    costs: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.reps):
        for name, call in contenders.items():
            costs[name].append(await cpu_per_call(call, args.calls, args.concurrency))
    pool.close()
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3200, help="calls per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (the wrk runs use 16)")
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    import uvloop

    for name, samples in uvloop.run(measure(args)).items():
        print(f"{name}: median {statistics.median(samples):.1f} CPU µs/call (min {min(samples):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
