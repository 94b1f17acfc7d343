"""Asking the client mid-call: the user (elicitation) for how to write, then the client's model (sampling)."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app import ToolError, ask, tool


class Style(BaseModel):
    tone: Literal["friendly", "formal", "brief"] = Field(default="friendly", description="How the note should sound")
    bullets: bool = Field(default=False, description="Write it as bullet points")


@tool(scopes=["notes.read"])
async def draft_note(topic: Annotated[str, Field(min_length=1, max_length=200)]) -> str:
    """Draft a short note about a topic: asks the user for the style, then the client's model for the text."""
    answer = await ask.elicit(f"How should the note about {topic!r} be written?", Style)
    if answer.action != "accept":
        raise ToolError("no draft: the user did not choose a style")
    style = answer.data
    layout = "as bullet points" if style.bullets else "as one paragraph"
    return await ask.sample(f"Write a {style.tone} note about {topic!r}, {layout}.", max_tokens=300)
