"""Readiness: named async checks behind /readyz, and SIGTERM turning readiness false before the server stops."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from fastapi import APIRouter
from fastapi.responses import JSONResponse

log = logging.getLogger("app.readiness")

Check = Callable[[], Awaitable[bool]]


class Readiness:
    """Register with `readiness.add("redis", ping)`; a check that raises, hangs or returns False fails.

    Checks run together with a short timeout and the answer is cached briefly, so probes from several
    orchestrators and load balancers don't hammer the dependencies.
    """

    def __init__(self, timeout: float = 1.0, cache_seconds: float = 1.5) -> None:
        self.checks: dict[str, Check] = {}
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self.draining = False
        self._lock = asyncio.Lock()
        self._answer: tuple[float, tuple[str, ...]] | None = None
        self._last_failing: tuple[str, ...] = ()

    def add(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def drain(self) -> None:
        """Shutdown has begun: from now on, not ready."""
        if not self.draining:
            log.warning("shutdown requested: readiness is now false")
        self.draining = True

    async def failing(self) -> tuple[str, ...]:
        """Names of the failing checks; empty means ready."""
        if self.draining:
            return ("shutdown",)
        async with self._lock:  # concurrent probes share one evaluation
            if self._answer is not None and time.monotonic() - self._answer[0] < self.cache_seconds:
                return self._answer[1]
            names = list(self.checks)
            results = await asyncio.gather(*(self._run(name, self.checks[name]) for name in names))
            failing = tuple(name for name, ok in zip(names, results, strict=True) if not ok)
            self._answer = (time.monotonic(), failing)
        if failing != self._last_failing:  # log transitions, not every probe
            log.warning("readiness: %s", f"failing {', '.join(failing)}" if failing else "ready")
            self._last_failing = failing
        return failing

    async def _run(self, name: str, check: Check) -> bool:
        try:
            return await asyncio.wait_for(check(), self.timeout) is True
        except Exception as exc:  # a broken dependency is "not ready", never a 500
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            return False


def probes(readiness: Readiness) -> APIRouter:
    """/healthz (the process answers; no dependencies) and /readyz (every check passes), outside the API schema."""
    router = APIRouter()

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        failing = await readiness.failing()  # names are logged, never returned: no internal detail on the wire
        return JSONResponse({"status": "not ready" if failing else "ready"}, status_code=503 if failing else 200)

    return router


@contextmanager
def drain_on_sigterm(readiness: Readiness, delay: float) -> Iterator[None]:
    """Wrap the server's SIGTERM handler: readiness goes false first, then (after `delay`) the server stops.

    Installed from the app's lifespan, so it works however uvicorn is launched; uvicorn's own handler only
    sets `should_exit`, after which it stops accepting and waits for in-flight requests.
    """
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # not the process's main server (e.g. a test thread): nothing to hook
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        first = not readiness.draining
        readiness.drain()
        if first and delay > 0:
            loop.call_later(delay, previous, sig, frame)
        else:
            previous(sig, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)
