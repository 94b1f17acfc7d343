"""Tools that run as tasks, for the Tasks extension's tests. `TASK_TOOL_MARKS` (a folder) receives a file per event
a test needs evidence of from another process: `{run}.started`, `{run}.cancelled`, `{run}.finished`."""

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from app import ToolError, ask, progress, tool

Seconds = Annotated[float, Field(ge=0, le=120)]
Run = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,40}$")]


def _mark(run: str, event: str) -> None:
    folder = os.environ.get("TASK_TOOL_MARKS")
    if folder and run:
        (Path(folder) / f"{run}.{event}").write_text(str(time.time()))


class Choice(BaseModel):
    archived: bool = Field(default=False, description="Include archived notes")


@tool(scopes=["notes.read"], task="optional")
async def asking_report(topic: Annotated[str, Field(max_length=80)], seconds: Seconds = 0.2) -> str:
    """Asks the user a question, reports progress, then answers."""
    await progress.report("asking")
    answer = await ask.elicit(f"Include archived notes about {topic!r}?", Choice)
    if answer.action != "accept":
        raise ToolError("the user did not answer")
    await progress.report("working")
    await asyncio.sleep(seconds)
    return f"report on {topic}: archived={answer.data.archived}"


@tool(scopes=["notes.read"], task="optional")
async def long_job(seconds: Seconds = 1.0, run: Run = "") -> str:
    """Works for `seconds` in small steps (cooperatively cancellable), leaving marks for the test."""
    _mark(run, "started")
    steps = max(1, int(seconds / 0.05))
    try:
        for step in range(steps):
            await progress.report(f"step {step + 1} of {steps}")
            await asyncio.sleep(seconds / steps)
    except asyncio.CancelledError:
        _mark(run, "cancelled")
        raise
    _mark(run, "finished")
    return f"done after {seconds:g} s"


@tool(scopes=["notes.read"], task="required")
async def only_as_task(n: int) -> int:
    """Runs only as a task."""
    return n * 2


@tool(scopes=["notes.read"], task="optional")
def blocking_job(seconds: Seconds = 0.2) -> str:
    """A plain `def` tool run as a task on a worker thread."""
    time.sleep(seconds)
    return "blocking done"


@tool(scopes=["notes.admin"], task="optional")
async def admin_job(seconds: Seconds = 0.1) -> str:
    """Needs notes.admin."""
    await asyncio.sleep(seconds)
    return "admin done"


@tool(scopes=["notes.read"], task="optional")
async def failing_job() -> str:
    """Fails with a tool error (a completed task whose result is isError)."""
    raise ToolError("the report could not be built")


@tool(scopes=["notes.read"])
async def plain_tool(n: int) -> int:
    """Never a task."""
    return n + 1
