"""A long-running tool: it runs as a task when the client can poll for it (`task="optional"`), reports how it is
getting on, and asks the user mid-run. Clients that cannot poll get the same result synchronously."""

import asyncio
from typing import Annotated

from pydantic import BaseModel, Field

from app import Caller, ask, progress, tool


class Scope(BaseModel):
    archived: bool = Field(default=False, description="Include archived notes")


@tool(scopes=["notes.read"], task="optional")
async def compile_report(
    topic: Annotated[str, Field(min_length=1, max_length=80)],
    caller: Caller,
    seconds: Annotated[float, Field(ge=0, le=600)] = 3,
) -> str:
    """Compile a report about a topic from the caller's notes. Takes a while: run it as a task where you can."""
    await progress.report("asking which notes to include")
    answer = await ask.elicit(f"Include archived notes in the report about {topic!r}?", Scope)
    archived = answer.action == "accept" and answer.data.archived
    steps = 3
    for step in range(1, steps + 1):
        await progress.report(f"step {step} of {steps}: reading notes")
        await asyncio.sleep(seconds / steps)  # the work; a cancel stops the tool here
    kept = "including archived notes" if archived else "current notes only"
    return f"Report on {topic!r} for {caller.name or caller.key}: 3 sections ({kept})."
