"""Tools that use server push (sampling, elicitation, logs, resource updates) and resumable streams."""

import asyncio

from mcp.server.mcpserver import Context
from mcp.types import SamplingMessage, TextContent
from pydantic import BaseModel

from app import ask, resource, tool


@tool(scopes=["mcp.read"])
async def push_sample(ctx: Context, prompt: str) -> str:
    """Ask the client's model, push style."""
    result = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=20
    )
    content = result.content
    return f"model said: {content.text if isinstance(content, TextContent) else '?'}"


class Answer(BaseModel):
    colour: str


@tool(scopes=["mcp.read"])
async def push_elicit(ctx: Context) -> str:
    """Ask the user, push style."""
    answer = await ctx.elicit("Favourite colour?", Answer)
    return f"{answer.action}: {answer.data.colour if answer.action == 'accept' else '-'}"


@tool(scopes=["mcp.read"])
async def ask_both(prompt: str) -> str:
    """Ask the user, then the client's model, the way the request's protocol era allows (`ask`)."""
    answer = await ask.elicit("Favourite colour?", Answer)
    colour = answer.data.colour if answer.action == "accept" else "-"
    return f"{colour}; model said: {await ask.sample(prompt, max_tokens=20)}"


@tool(scopes=["mcp.read"])
async def push_logs(ctx: Context) -> str:
    """Log once at each of three levels."""
    await ctx.debug("push debug")
    await ctx.info("push info")
    await ctx.error("push error")
    return "logged"


@tool(scopes=["mcp.read"])
async def push_dropped(ctx: Context, count: int = 3) -> str:
    """Send progress, close this call's SSE stream mid-call, send more, then answer: nothing may be lost."""
    for step in range(count):
        await ctx.report_progress(step + 1, 2 * count, f"before {step + 1}")
    await ctx.close_sse_stream()
    await asyncio.sleep(0.3)  # the client is now reconnecting with Last-Event-ID
    for step in range(count, 2 * count):
        await ctx.report_progress(step + 1, 2 * count, f"after {step + 1}")
    return "finished"


_value = [0]


@resource("push://value", scopes=["mcp.read"], mime_type="text/plain")
def push_value() -> str:
    """A value push_change changes."""
    return str(_value[0])


@tool(scopes=["mcp.read"])
async def push_change(ctx: Context) -> int:
    """Change push://value and tell its subscribers."""
    _value[0] += 1
    await ctx.notify_resource_updated("push://value")
    return _value[0]


@tool(scopes=["mcp.read"])
def push_where() -> int:
    """The serving process (to tell replicas apart)."""
    import os

    return os.getpid()
