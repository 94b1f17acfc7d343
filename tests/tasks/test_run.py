"""A running task tool stops when its task is cancelled, even when the store hides the cancel: a Redis client
cleaning up after a cancelled command (UNWATCH on a broken connection) can raise its own error in place of the
CancelledError, and a tool must not take that for a store blip and run on."""

from __future__ import annotations

import asyncio

import pytest

from app.tasks.records import Record, TaskOptions, new_record
from app.tasks.run import TaskRun
from app.tasks.store import Change, MemoryTaskStore


class CleanupFails(MemoryTaskStore):
    """A store whose writes are slow, and whose cleanup after a cancelled write raises, as a Redis client's can."""

    async def change(self, task_id: str, mutate: Change) -> Record | None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            raise ConnectionError("Connection closed by server.") from None
        return await super().change(task_id, mutate)


async def _started_run() -> TaskRun:
    store, options = CleanupFails(), TaskOptions()
    record = new_record("t" * 32 + ".job", "job", "owner", options, None)
    await store.put(record)
    return TaskRun(store, record, options, lambda action: None)


@pytest.mark.parametrize("step", ["report", "ask"])
async def test_a_cancel_a_store_error_hid_still_stops_the_tool(step: str) -> None:
    run = await _started_run()
    seen: list[str] = []

    async def tool() -> None:
        try:
            for _ in range(40):  # a tool that keeps reporting progress (or asking) for a couple of seconds
                if step == "report":
                    await run.report("working")
                else:
                    await run.ask({"method": "elicitation/create", "params": {}})
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        seen.append("ran on after its cancel")

    task = asyncio.ensure_future(tool())
    await asyncio.sleep(0.2)  # inside a store write, or waiting for the answer
    task.cancel()
    await asyncio.wait({task}, timeout=30)
    assert seen == ["cancelled"] and task.cancelled()
