"""Settings shared by the baseline servers, read from env vars set by the runner.

Stdlib only: this module is imported both from the project venv and from the
separate fastmcp venv.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

ISSUER = os.environ.get("BENCH_ISSUER", "https://issuer.bench.invalid")
AUDIENCE = os.environ.get("BENCH_AUDIENCE", "api://bench")
SCOPE = os.environ.get("BENCH_SCOPE", "mcp.read")
STATEFUL = os.environ.get("BENCH_STATEFUL", "0") == "1"
ASYNC_TOOL = os.environ.get("BENCH_TOOL", "sync") == "async"
"""`bench/run.py --tool async`: every target serves `async def echo` (no worker-thread hand-off) instead of `def`."""


def echo_tool() -> Callable[..., Any]:
    """The trivial tool every target serves (as `echo`): `def`, or `async def` with `--tool async`."""
    return _echo_async if ASYNC_TOOL else _echo


def _echo(text: str) -> str:
    """Return the text unchanged."""
    return text


async def _echo_async(text: str) -> str:
    """Return the text unchanged."""
    return text


def resource_url() -> str:
    """Public URL of this server, as advertised in the protected-resource metadata."""
    return os.environ.get("BENCH_RESOURCE_URL", "http://127.0.0.1:8000/mcp")


def public_key_pem() -> str:
    """The RSA public key (PEM) the verifiers trust, written by the runner."""
    return Path(os.environ["BENCH_PUBLIC_KEY_FILE"]).read_text()
