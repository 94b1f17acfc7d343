"""Run any ASGI app on a real uvicorn, on a free loopback port, in a background thread (shipped in app.toolkit.testing);
and wait for a server started as a subprocess."""

from __future__ import annotations

import asyncio
import subprocess
import time

import httpx2
from starlette.datastructures import State

from app.compose.http import Entry
from app.toolkit.testing import ServerThread, free_port

__all__ = ["ServerThread", "app_state", "free_port", "wait_ready"]


def app_state(server: ServerThread) -> State:
    """The `state` of the app a `ServerThread` serves, which `create_app` built (an `Entry`)."""
    app = server.server.config.app
    assert isinstance(app, Entry), app
    return app.state


async def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
    """Poll `{url}/readyz` until 200; fail with the process output if it exits, or at the deadline."""
    deadline = time.monotonic() + timeout
    async with httpx2.AsyncClient() as http:
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise AssertionError(f"server exited during startup ({process.returncode}): {output[-2000:]}")
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} did not become ready in {timeout:.0f} s"
            await asyncio.sleep(0.1)
