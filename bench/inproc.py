"""In-process cost of one `tools/call`: (a) vs (d) driven straight through ASGI, no HTTP server, no load generator.

`uv run python bench/inproc.py --target d --ablate audit,ratelimit` shows what a layer costs by swapping it for a
pass-through (measurement only). With no socket, no wrk and no uvicorn in the loop, a run on an idle core repeats
within a few µs, which the wrk points cannot. The echo tool is async here for both targets: a sync tool's worker-
thread hand-off is the same for both and is the noisiest part of a request. Results are µs of CPU per request:
the 10th percentile and the median of `--reps` batches. Not a test, and not part of `make bench`.

(d) is `app.main.create_app()` with the settings users get (development mode only for the embedded dev issuer's
tokens; JSON responses and WARNING logs as (a)), sessions, rate limits and caps at their defaults. The layers are
those of app/main.py's request path; `--ablate` names groups of them (see `swaps`). The run stops with an error if
any request is refused, as a refusal would make a layer look cheap.

`--instructions` counts instead of timing: the script re-runs itself under valgrind's callgrind (Debian package
`valgrind`), with instrumentation on only around the measured requests, and prints instructions per request.
That count does not move with the machine's speed (repeat runs agree within 1%), so it shows a few-percent change
that timings on this VM cannot; it leaves out system calls and cache misses, which the wrk runs include.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
# Each name is a group of layers of app/main.py's request path, outermost first (see `swaps` below).
ABLATIONS = (
    "edge", "bounds", "ratelimit", "authz", "streams",
    "audit", "observe", "secretguard", "callercontext", "toolbounds", "ask",
)  # fmt: skip
CONCURRENCY = 16
"""Clients in flight: the default per-principal cap on tool calls in flight (SECURITY__MAX_CONCURRENT_CALLS_PER_
PRINCIPAL), as wrk's 16 connections in the suite."""
WARM_BATCHES = 4

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


def project_env(ablate: set[str], tools_dir: Path) -> dict[str, str]:
    """(d)'s settings: the defaults users get, every limit and cap included (none is raised here, unlike the wrk
    suite's PROJECT_ENV: the loop spreads its requests over many principals instead, see `callers`)."""
    audit = Path(tempfile.mkdtemp(prefix="inproc-audit-")) / "audit.jsonl"  # a real file, as (d) in the wrk runs
    return {
        "APP_ENV": "development",  # tokens from the dev issuer, validated as Entra's are
        "DEV_ISSUER__EMBEDDED": "true",
        "DEV_ISSUER__PORT": str(_free_port()),
        "TOOLS__DIR": str(tools_dir),
        "TOOLS__LOCK_MODE": "off",  # the temporary tools directory has no reviewed tools.lock (start-up only)
        "MCP__JSON_RESPONSE": "true",  # the response shape of (a) and of the wrk suite's targets
        "LOG_LEVEL": "WARNING",  # as (a): no INFO line per request
        "AUDIT__SINK": "off" if "audit" in ablate else f"file:{audit}",
    }


def project_app(ablate: set[str], tools_dir: Path) -> App:
    """(d) as `app.main.create_app` builds it, with the chosen layers replaced by pass-throughs."""
    os.environ.update(project_env(ablate, tools_dir))
    from app.auth.authz import AuthorizeOperation
    from app.core.asgi import EnsureResponse
    from app.edge.bounds import CapConcurrency, LimitBody
    from app.edge.headers import HostOriginGuard, SecurityHeaders
    from app.edge.ratelimit import RateLimit, ThrottleUnauthenticated
    from app.edge.streams import CapStreams
    from app.observability.observe import ObserveOperation
    from app.server.ask import AskClient
    from app.server.build import CallerContext, SecretGuard
    from app.server.tool_bounds import ToolBounds

    async def asgi_through(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    async def sdk_through(self: Any, ctx: Any, call_next: Any) -> Any:
        return await call_next(ctx)

    # Authentication, ParseOperation and SessionScope stay: the layers after them read what they bind.
    # (ForwardedHeaders is not on the default path: it is added only with SECURITY__TRUSTED_PROXIES.)
    swaps: dict[str, list[tuple[type, Any]]] = {
        "edge": [(SecurityHeaders, asgi_through), (HostOriginGuard, asgi_through)],
        "bounds": [(LimitBody, asgi_through), (CapConcurrency, asgi_through), (EnsureResponse, asgi_through)],
        "ratelimit": [(RateLimit, asgi_through), (ThrottleUnauthenticated, asgi_through)],
        "authz": [(AuthorizeOperation, asgi_through)],
        "streams": [(CapStreams, asgi_through)],
        "observe": [(ObserveOperation, sdk_through)],
        "secretguard": [(SecretGuard, sdk_through)],
        "callercontext": [(CallerContext, sdk_through)],
        "toolbounds": [(ToolBounds, sdk_through)],
        "ask": [(AskClient, sdk_through)],
    }
    for name in ablate - {"audit"}:
        for cls, replacement in swaps[name]:
            cls.__call__ = replacement  # type: ignore[method-assign]
    from app.main import create_app

    return create_app()


def _free_port() -> int:
    """A loopback port for the embedded dev issuer, so runs side by side (the smoke tests) never collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


async def post(app: App, headers: Headers, body: bytes) -> list[dict[str, Any]]:
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


def call_body(protocol: str, request_id: int = 1) -> bytes:
    params: dict[str, Any] = {"name": "echo", "arguments": {"text": "hi"}}
    if protocol == "2026-07-28":
        params["_meta"] = META
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}).encode()


async def handshake(app: App, headers: Headers, protocol: str) -> Headers:
    """What each call adds to `headers` at `protocol`: routing headers at 2026-07-28; at 2025-11-25 the version and,
    when the app keeps sessions (the project's default), the session this caller opened."""
    if protocol == "2026-07-28":
        return [(b"mcp-protocol-version", b"2026-07-28"), (b"mcp-method", b"tools/call"), (b"mcp-name", b"echo")]
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "inproc", "version": "0"}}
    answer = await post(
        app, headers, json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init}).encode()
    )
    if answer[0]["status"] != 200:
        raise SystemExit(f"initialize failed: {answer}")
    added = [(b"mcp-protocol-version", b"2025-11-25")]
    added += [(name, value) for name, value in answer[0]["headers"] if name.lower() == b"mcp-session-id"]
    initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
    answer = await post(app, [*headers, *added], initialized)
    if answer[0]["status"] != 202:
        raise SystemExit(f"notifications/initialized failed: {answer}")
    return added


async def callers(app: App, args: argparse.Namespace, base: Headers, requests: int) -> Iterator[Headers]:
    """The headers of each request in turn, for `requests` requests."""
    if args.target == "a":
        return itertools.repeat([*base, *await handshake(app, base, args.protocol)])
    from limits import parse_many

    from app.compose.devissuer import dev_issuer_config
    from app.devissuer.issuer import DevIssuer
    from app.devissuer.rules import DevUser

    settings = app.state.settings  # type: ignore[attr-defined]
    # The default per-principal limit (RATE_LIMIT__DEFAULT, 120/minute) would refuse this loop within a second. The
    # benchmark keeps it, and every other default, as users get them: the requests are spread over distinct
    # principals instead, each sending at most its budget in all (so never refused, however long the run), every
    # request still counted by RateLimit. A session opened at 2025-11-25 spends two requests of its principal's.
    budget = min(item.amount for item in parse_many(settings.rate_limit.default))
    per_caller = budget - (2 if args.protocol == "2025-11-25" else 0)
    if per_caller < 1:
        raise SystemExit(f"RATE_LIMIT__DEFAULT={settings.rate_limit.default} leaves no call after the handshake")
    issuer = DevIssuer(dev_issuer_config(settings))
    turns = []
    for n in range(math.ceil(requests / per_caller)):
        user = DevUser(f"00000000-0000-4000-8000-{n:012d}", f"Bench {n}", f"bench{n}@localhost")
        token = issuer.mint("mcp.read", user=user)
        # Validated once up front, as the wrk suite's one token is: a request then finds it cached.
        await app.state.validator.validate(token)  # type: ignore[attr-defined]
        headers = [*base, (b"authorization", f"Bearer {token}".encode())]
        turns.append([*headers, *await handshake(app, headers, args.protocol)])
    return itertools.chain.from_iterable(itertools.repeat(headers, per_caller) for headers in turns)


async def measure(args: argparse.Namespace) -> list[float]:
    with tempfile.TemporaryDirectory() as tools:
        (Path(tools) / "echo.py").write_text(ASYNC_ECHO)
        app = project_app(set(args.ablate), Path(tools)) if args.target == "d" else bare_app()
        running = await start(app)
    base = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
    base.append((b"accept", b"application/json, text/event-stream"))
    each = args.batch // CONCURRENCY  # calls per client per batch
    turns = await callers(app, args, base, 1 + (WARM_BATCHES + args.reps) * each * CONCURRENCY)
    answer = await post(app, next(turns), call_body(args.protocol))
    if answer[0]["status"] != 200 or b'"hi"' not in b"".join(m.get("body", b"") for m in answer[1:]):
        raise SystemExit(f"the check call failed: {answer}")
    # Distinct ids: clients of one principal share its session at 2025-11-25, where an id in flight is refused.
    bodies = [call_body(args.protocol, client + 1) for client in range(CONCURRENCY)]
    refused: Counter[int] = Counter()

    async def client(calls: int, body: bytes) -> None:
        for _ in range(calls):
            status = (await post(app, next(turns), body))[0]["status"]
            if status != 200:
                refused[status] += 1

    await asyncio.gather(*(client(WARM_BATCHES * each, body) for body in bodies))
    gc.collect()
    gc.freeze()
    counting = os.environ.get(UNDER_CALLGRIND) == "1"
    if counting:
        _instrument("on")
    costs = []
    for _ in range(args.reps):
        started = time.process_time()
        await asyncio.gather(*(client(each, body) for body in bodies))
        costs.append((time.process_time() - started) / (each * CONCURRENCY) * 1e6)
    if counting:
        _instrument("off")
    running.cancel()
    if refused:  # a refusal costs far less than an answer: the figures would flatter the app
        raise SystemExit(f"requests were refused (HTTP status: count): {dict(refused)}")
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
    measured: int = args.reps * (args.batch // CONCURRENCY * CONCURRENCY)
    return int(totals[0].split()[1]) // measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("a", "d"), default="d")
    parser.add_argument("--protocol", choices=("2025-11-25", "2026-07-28"), default="2026-07-28")
    parser.add_argument("--ablate", type=lambda v: [x for x in v.split(",") if x], default=[], help=",".join(ABLATIONS))
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument(
        "--batch", type=int, default=480, help=f"requests per timed batch (a multiple of {CONCURRENCY})"
    )
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind instead")
    args = parser.parse_args()
    if unknown := set(args.ablate) - set(ABLATIONS):
        parser.error(f"unknown ablation(s): {', '.join(sorted(unknown))}")
    if args.batch < CONCURRENCY or args.reps < 1:
        parser.error(f"--batch must be at least {CONCURRENCY} and --reps at least 1")
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
