"""The benchmark targets. Every target is defined here, and only here.

(a) bare MCP SDK, (b) SDK + minimal RS256 TokenVerifier, (c) fastmcp + JWTVerifier
(own venv), (d) this project's app. Each target is served by uvicorn with the same
flags (uvloop + httptools, no access log, warning-level logs) so the server stack is
equal and only the framework/auth layers differ.

>>> Integration points for (d), the project app: see the PROJECT_* constants below. <<<
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.keys import BenchKeys
from bench.procs import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
FASTMCP_VENV = REPO_ROOT / "bench" / ".venvs" / "fastmcp"

# ---------------------------------------------------------------------------------------------
# (d) THE PROJECT APP: adjust these few lines when app/ lands.
# ---------------------------------------------------------------------------------------------
PROJECT_APP = "app.main:app"
"""ASGI import string; started as `uvicorn app.main:app --port P` from the repo root."""
PROJECT_ENV: dict[str, str] = {
    # Everything on, with the defaults users get: auth (dev issuer tokens, same validation as Entra's), per-tool
    # authorization, rate limits (RATE_LIMIT__* untouched: 120/minute per caller, moving window, in memory; the load
    # comes from many callers, see bench/callers.py), the in-flight caps (16 per caller, 128 overall), telemetry
    # (SDK spans and metrics, no exporter), audit to a file.
    "APP_ENV": "development",
    "DEV_ISSUER__EMBEDDED": "false",  # the bench runs one dev issuer for all (d) processes (see _prepare_project)
    # A free port per bench run (two runs at once, as in the tests, must not share an issuer whose keys differ).
    "DEV_ISSUER__PORT": str(free_port()),
    "TOOLS__DIR": str(REPO_ROOT / "bench" / "tools"),
    "MCP__JSON_RESPONSE": "true",  # as the baselines
    "AUDIT__SINK": "file:{scratch}/audit-{pid}.jsonl",  # {scratch}: the run's own directory, removed at its end
    "LOG_LEVEL": "WARNING",  # as the baselines
}
"""Extra environment for the app server *and* for the token command."""
PROJECT_TOKENS_ARGV: list[str] = ["-m", "bench.project_tokens"]
"""Run with the project's Python and a count; must print that many JWTs, one per line, each for a distinct user."""
PROJECT_MCP_PATH = "/mcp"
PROJECT_STATEFUL_ENV: dict[str, str] | None = {"MCP__STATELESS": "false"}
"""Env that makes the app serve stateful 2025-11-25 sessions, or None to skip the session-memory test. (Sessions are
the app's default: the steady 2025-11-25 runs use one session too.)"""
PROJECT_SCALING_ENV: dict[str, str] = {"MCP__STATELESS": "true"}
"""Env for the 1 vs 2 workers runs (both, so they compare): a session lives in one worker, so the app refuses
sessions with several workers and users running several set exactly this."""
PROJECT_REQUIRED_FILE = REPO_ROOT / "app" / "main.py"
"""(d) is skipped, not failed, while this file does not exist."""
PROJECT_UVICORN_FLAGS: tuple[str, ...] | None = None
"""uvicorn flags after `--port P`; None = the same flags as the baselines (UVICORN_FLAGS)."""
# ---------------------------------------------------------------------------------------------

UVICORN_FLAGS = (
    "--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
)  # fmt: skip


@dataclass(frozen=True)
class Context:
    out_dir: Path
    keys: BenchKeys
    scratch: Path
    """A directory for what servers write during the run (the audit files); bench/cli.py removes it at the end."""
    refresh_fastmcp: bool = False


def _in_scratch(env: Mapping[str, str], ctx: Context) -> dict[str, str]:
    return {name: value.replace("{scratch}", str(ctx.scratch)) for name, value in env.items()}


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    app: str
    python: Path
    prepare: Callable[[Context], str | None]
    """Makes the target runnable; returns a reason to skip it, or None."""
    mint_tokens: Callable[[Context, int], list[str] | None]
    """Tokens for that many distinct callers, or None for a target without auth."""
    env: Mapping[str, str] = field(default_factory=dict)
    stateful_env: Mapping[str, str] | None = None
    scaling_env: Mapping[str, str] = field(default_factory=dict)
    """Extra env for the 1 vs 2 workers runs."""
    async_tool_env: Mapping[str, str] = field(default_factory=dict)
    """Extra env with `--tool async` (BENCH_TOOL=async); the baselines read BENCH_TOOL themselves."""
    mcp_path: str = "/mcp"
    packages: tuple[str, ...] = ("mcp", "uvicorn", "starlette", "pydantic")
    uvicorn_flags: tuple[str, ...] = UVICORN_FLAGS

    def argv(self, port: int, workers: int = 1) -> list[str]:
        argv = [str(self.python), "-m", "uvicorn", self.app, "--port", str(port), *self.uvicorn_flags]
        if workers > 1:
            argv += ["--workers", str(workers)]
        return argv

    def environ(self, ctx: Context, port: int, stateful: bool = False, scaling: bool = False) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["BENCH_PUBLIC_KEY_FILE"] = str(ctx.keys.public_key_file)
        env["BENCH_RESOURCE_URL"] = f"http://127.0.0.1:{port}{self.mcp_path}"
        env |= _in_scratch(self.env, ctx)
        if env.get("BENCH_TOOL") == "async":
            env |= self.async_tool_env
        if stateful and self.stateful_env is not None:
            env |= self.stateful_env
        if scaling:
            env |= self.scaling_env
        return env

    def versions(self) -> dict[str, str]:
        code = (
            "import importlib.metadata as m, json, sys\n"
            "v = {}\n"
            "for p in sys.argv[1:]:\n"
            "    try: v[p] = m.version(p)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(v))"
        )
        out = subprocess.run(  # noqa: S603
            [str(self.python), "-c", code, *self.packages], capture_output=True, text=True, check=True
        )
        versions: dict[str, str] = json.loads(out.stdout)
        return versions


def _always_ready(_: Context) -> str | None:
    return None


def _no_token(_: Context, __: int) -> list[str] | None:
    return None


def _bench_tokens(ctx: Context, count: int) -> list[str] | None:
    return [ctx.keys.token(subject=f"bench-user-{i}") for i in range(count)]


def find_uv() -> str | None:
    """uv on PATH, else where `make` installs it (`pip install --user`: ~/.local/bin, often not on PATH)."""
    found = shutil.which("uv")
    if found is not None:
        return found
    user_uv = Path.home() / ".local" / "bin" / "uv"
    return str(user_uv) if os.access(user_uv, os.X_OK) else None


def _prepare_fastmcp(ctx: Context) -> str | None:
    """Create bench/.venvs/fastmcp on demand: latest fastmcp, plus uvicorn[standard] for uvloop/httptools."""
    python = FASTMCP_VENV / "bin" / "python"
    ready = FASTMCP_VENV / ".bench-ready"
    if ready.exists() and not ctx.refresh_fastmcp:
        return None
    uv = find_uv()
    if uv is None:
        return "uv, which creates its venv, is neither on PATH nor in ~/.local/bin (`make install` puts it there)"
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    print(f"[bench] creating {FASTMCP_VENV.relative_to(REPO_ROOT)} with the latest fastmcp ...", file=sys.stderr)
    try:
        subprocess.run([uv, "venv", "-q", "--clear", "--python", py, str(FASTMCP_VENV)], check=True)  # noqa: S603
        install = [uv, "pip", "install", "-q", "--upgrade", "--python", str(python), "fastmcp", "uvicorn[standard]"]
        subprocess.run(install, check=True)  # noqa: S603
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"could not create the fastmcp venv: {exc}"
    ready.touch()
    return None


def _prepare_project(ctx: Context) -> str | None:
    if not PROJECT_REQUIRED_FILE.exists():
        return f"{PROJECT_REQUIRED_FILE.relative_to(REPO_ROOT)} does not exist yet: the project app has not landed"
    # One standalone dev issuer for every (d) process, as Entra is for every replica: workers > 1 can share it.
    env = dict(os.environ) | {"PYTHONPATH": str(REPO_ROOT)} | _in_scratch(PROJECT_ENV, ctx)
    issuer = subprocess.Popen(
        [sys.executable, "-m", "app.devissuer", "serve"], env=env, cwd=REPO_ROOT, stderr=subprocess.DEVNULL
    )
    atexit.register(issuer.terminate)
    return None


def _project_tokens(ctx: Context, count: int) -> list[str] | None:
    env = dict(os.environ) | {"PYTHONPATH": str(REPO_ROOT)} | _in_scratch(PROJECT_ENV, ctx)
    proc = subprocess.run(  # noqa: S603
        [sys.executable, *PROJECT_TOKENS_ARGV, str(count)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    tokens = proc.stdout.split()
    if proc.returncode != 0 or len(tokens) != count or any(t.count(".") != 2 for t in tokens):
        raise RuntimeError(f"token command failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return tokens


_PY = Path(sys.executable)

_STATEFUL = {"BENCH_STATEFUL": "1"}
_STACK = ("mcp", "uvicorn", "starlette", "pydantic")

TARGETS: dict[str, Target] = {
    "a": Target(
        key="a",
        label="sdk-bare",
        app="bench.servers.sdk_bare:app",
        python=_PY,
        prepare=_always_ready,
        mint_tokens=_no_token,
        stateful_env=_STATEFUL,
    ),
    "b": Target(
        key="b",
        label="sdk-rs256",
        app="bench.servers.sdk_auth:app",
        python=_PY,
        prepare=_always_ready,
        mint_tokens=_bench_tokens,
        stateful_env=_STATEFUL,
        packages=(*_STACK, "pyjwt", "cryptography"),
    ),
    "c": Target(
        key="c",
        label="fastmcp-jwt",
        app="bench.servers.fastmcp_jwt:app",
        python=FASTMCP_VENV / "bin" / "python",
        prepare=_prepare_fastmcp,
        mint_tokens=_bench_tokens,
        env={"FASTMCP_LOG_LEVEL": "WARNING", "FASTMCP_SHOW_SERVER_BANNER": "false"},
        stateful_env=_STATEFUL,
        packages=("fastmcp", *_STACK, "joserfc"),
    ),
    # (a) with the GC settings (d) starts with: gc.freeze() after start-up and a young-generation threshold of 10000.
    "af": Target(
        key="af",
        label="sdk-bare-gc",
        app="bench.servers.sdk_bare_gcfreeze:app",
        python=_PY,
        prepare=_always_ready,
        mint_tokens=_no_token,
    ),
    # (d) -- see the PROJECT_* constants at the top of this file.
    "d": Target(
        key="d",
        label="project",
        app=PROJECT_APP,
        python=_PY,
        prepare=_prepare_project,
        mint_tokens=_project_tokens,
        env=PROJECT_ENV,
        stateful_env=PROJECT_STATEFUL_ENV,
        scaling_env=PROJECT_SCALING_ENV,
        async_tool_env={"TOOLS__DIR": str(REPO_ROOT / "bench" / "tools_async")},
        mcp_path=PROJECT_MCP_PATH,
        uvicorn_flags=PROJECT_UVICORN_FLAGS or UVICORN_FLAGS,
        packages=(*_STACK, "fastapi", "pyjwt", "limits", "opentelemetry-sdk"),
    ),
}
