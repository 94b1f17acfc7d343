"""In-process cost of one `tools/call`: (a) vs (d) driven straight through ASGI, no HTTP server, no load generator.

`uv run python bench/inproc.py --target d --ablate audit,ratelimit` shows what a layer costs by swapping it for a
pass-through (measurement only). With no socket, no wrk and no uvicorn in the loop, a run on an idle core repeats
within a few µs, which the wrk points cannot. The echo tool is async here for both targets: a sync tool's worker-
thread hand-off is the same for both and is the noisiest part of a request. Results are µs of CPU per request:
the 10th percentile and the median of `--reps` batches. Not a test, and not part of `make bench`.

`--instructions` counts instead of timing: the script re-runs itself under valgrind's callgrind (Debian package
`valgrind`), with instrumentation on only around the measured requests, and prints instructions per request.
That count does not move with the machine's speed (repeat runs agree within 1%), so it shows a few-percent change
that timings on this VM cannot; it leaves out system calls and cache misses, which the wrk runs include.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.targets import PROJECT_ENV

ASYNC_ECHO = '''
from app import tool


@tool(scopes=["mcp.read"])
async def echo(text: str) -> str:
    """Echo the text back."""
    return text
'''
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "inproc", "version": "0"},
}
UNDER_CALLGRIND = "INPROC_UNDER_CALLGRIND"
ABLATIONS = ("audit", "ratelimit", "observe", "secretguard", "callercontext", "toolbounds", "edge", "bounds")
CONCURRENCY = 16

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def project_app(ablate: set[str], tools_dir: Path) -> App:
    """(d) as `app.main` builds it, with the chosen layers replaced by pass-throughs."""
    os.environ.update(PROJECT_ENV)
    os.environ.update({"DEV_ISSUER__EMBEDDED": "true", "DEV_ISSUER__PORT": "18031"})
    audit = Path(tempfile.mkdtemp(prefix="inproc-audit-")) / "audit.jsonl"  # a real file, as (d) in the wrk runs
    os.environ.update({"TOOLS__DIR": str(tools_dir), "TOOLS__LOCK_MODE": "off", "AUDIT__SINK": f"file:{audit}"})
    if "audit" in ablate:
        os.environ["AUDIT__SINK"] = "off"
    from app import bounds, edge, http, mcp_server, observe, ratelimit

    async def asgi_through(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    async def sdk_through(self: Any, ctx: Any, call_next: Any) -> Any:
        return await call_next(ctx)

    swaps: dict[str, list[tuple[type, Any]]] = {
        "ratelimit": [(ratelimit.RateLimit, asgi_through), (ratelimit.ThrottleUnauthenticated, asgi_through)],
        "observe": [(observe.ObserveOperation, sdk_through)],
        "secretguard": [(mcp_server.SecretGuard, sdk_through)],
        "callercontext": [(mcp_server.CallerContext, sdk_through)],
        "toolbounds": [(bounds.ToolBounds, sdk_through)],
        "edge": [(edge.SecurityHeaders, asgi_through), (edge.HostOriginGuard, asgi_through)],
        "bounds": [
            (bounds.LimitBody, asgi_through),
            (bounds.CapConcurrency, asgi_through),
            (http.EnsureResponse, asgi_through),
        ],
    }
    for name in ablate - {"audit"}:
        for cls, replacement in swaps[name]:
            cls.__call__ = replacement  # type: ignore[method-assign]
    from app.main import create_app

    return create_app()


def bare_app() -> App:
    """(a) with the same async echo."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("inproc-sdk-bare", log_level="WARNING")

    @server.tool()
    async def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return server.streamable_http_app(streamable_http_path="/mcp", stateless_http=True, json_response=True)


async def start(app: App) -> asyncio.Future[None]:
    """Run the ASGI lifespan startup; the returned task keeps the app running."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.ensure_future(app({"type": "lifespan", "state": {}}, inbox.get, outbox.put))
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise SystemExit(f"startup failed: {message}")
    return lifespan


async def post(app: App, headers: list[tuple[bytes, bytes]], body: bytes) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    return sent


def call_body(protocol: str) -> bytes:
    params: dict[str, Any] = {"name": "echo", "arguments": {"text": "hi"}}
    if protocol == "2026-07-28":
        params["_meta"] = META
    return json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).encode()


async def measure(args: argparse.Namespace) -> list[float]:
    with tempfile.TemporaryDirectory() as tools:
        (Path(tools) / "echo.py").write_text(ASYNC_ECHO)
        app = project_app(set(args.ablate), Path(tools)) if args.target == "d" else bare_app()
        running = await start(app)
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
    headers.append((b"accept", b"application/json, text/event-stream"))
    if args.target == "d":
        argv = [sys.executable, "-m", "app.auth.dev_issuer", "token", "--scopes", "mcp.read"]
        minted = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, check=True)
        token = minted.stdout.strip()
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if args.protocol == "2026-07-28":
        headers += [(b"mcp-protocol-version", b"2026-07-28"), (b"mcp-method", b"tools/call"), (b"mcp-name", b"echo")]
    else:
        init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "inproc", "version": "0"}}
        await post(
            app, headers, json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}).encode()
        )
        headers.append((b"mcp-protocol-version", b"2025-11-25"))
    body = call_body(args.protocol)
    answer = await post(app, headers, body)
    if answer[0]["status"] != 200 or b'"hi"' not in b"".join(m.get("body", b"") for m in answer[1:]):
        raise SystemExit(f"the check call failed: {answer}")

    async def client(calls: int) -> None:
        for _ in range(calls):
            await post(app, headers, body)

    await asyncio.gather(*(client(args.batch // CONCURRENCY) for _ in range(CONCURRENCY * 4)))  # warm-up
    gc.collect()
    gc.freeze()
    counting = os.environ.get(UNDER_CALLGRIND) == "1"
    if counting:
        _instrument("on")
    costs = []
    for _ in range(args.reps):
        started = time.process_time()
        await asyncio.gather(*(client(args.batch // CONCURRENCY) for _ in range(CONCURRENCY)))
        costs.append((time.process_time() - started) / args.batch * 1e6)
    if counting:
        _instrument("off")
    running.cancel()
    return sorted(costs)


def _instrument(switch: str) -> None:
    """Turn callgrind's counting on or off for this process (blocking on purpose: nothing else may run between)."""
    subprocess.run(["callgrind_control", f"--instr={switch}", str(os.getpid())], check=True, capture_output=True)  # noqa: S603, S607


def count_instructions(args: argparse.Namespace, argv: list[str]) -> int:
    """Re-run this script under callgrind; instructions executed per measured request."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        command += [sys.executable, __file__, *[a for a in argv if a != "--instructions"]]
        env = os.environ | {UNDER_CALLGRIND: "1", "PYTHONMALLOC": "malloc"}  # valgrind sees each allocation
        subprocess.run(command, env=env, check=True, capture_output=True)  # noqa: S603
        totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[0].split()[1]) // (args.reps * args.batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("a", "d"), default="d")
    parser.add_argument("--protocol", choices=("2025-11-25", "2026-07-28"), default="2026-07-28")
    parser.add_argument("--ablate", type=lambda v: [x for x in v.split(",") if x], default=[], help=",".join(ABLATIONS))
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=480, help="requests per timed batch")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    args = parser.parse_args()
    if unknown := set(args.ablate) - set(ABLATIONS):
        parser.error(f"unknown ablation(s): {', '.join(sorted(unknown))}")
    label = f"({args.target}) {args.protocol}" + (f" without {','.join(args.ablate)}" if args.ablate else "")
    if args.instructions:
        print(f"{label}: {count_instructions(args, sys.argv[1:]) / 1000:.0f} k instructions/req")
        return 0
    import uvloop

    costs = uvloop.run(measure(args))
    print(f"{label}: p10 {costs[len(costs) // 10]:.0f} µs/req, median {statistics.median(costs):.0f} µs/req")
    os._exit(0)  # the app's background tasks (dev issuer, refreshers) need no orderly shutdown here


if __name__ == "__main__":
    raise SystemExit(main())
