"""Where plain `def` tools run: a bounded pool of worker threads, each call in a copy of the caller's context.

The SDK would hand each call to `anyio.to_thread`, whose capacity limiter, cancel scope and extra event-loop turns
cost about twice what asyncio's own executor does per call (`bench/RESULTS.md`). The threads still count as AnyIO
worker threads, so a sync tool can reach back to the event loop with `anyio.from_thread`, as under the SDK.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

from anyio._core._eventloop import threadlocals  # what anyio.from_thread reads; anyio has no public setter
from anyio.lowlevel import EventLoopToken, current_token

from app.core.sdk_private import is_async_callable  # the SDK's own test: we wrap exactly what it threads


class ToolThreads:
    """Runs sync tool functions off the event loop, at most `workers` at once (later calls wait for a thread).

    A cancelled call (the tool's deadline) returns at once; its thread, which Python cannot interrupt, runs the
    function to its end and the result is dropped.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None  # made on first use, in the event loop it serves

    def serve(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` as the SDK should register it: async tools unchanged, sync ones as a coroutine run on this pool.

        `functools.wraps` keeps the signature, annotations and docstring, so the SDK derives the same input schema,
        `Context` parameter and description as from `fn` itself."""
        if is_async_callable(fn):
            return fn

        @functools.wraps(fn)
        async def on_a_worker_thread(**kwargs: Any) -> Any:
            pool = self._pool or self._start()
            # copy_context: the caller, the secret store and the downstream credential are context variables.
            call = functools.partial(copy_context().run, fn, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(pool, call)

        return on_a_worker_thread

    def close(self) -> None:
        """Refuse new calls and drop queued ones; running calls finish on their own (Python cannot stop them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> ThreadPoolExecutor:
        self._pool = ThreadPoolExecutor(
            self.workers, thread_name_prefix="tool", initializer=_claim_for_anyio, initargs=(current_token(),)
        )
        return self._pool


def _claim_for_anyio(token: EventLoopToken) -> None:
    """What anyio's own worker threads carry: the way back to the event loop for `anyio.from_thread`."""
    threadlocals.current_token = token
