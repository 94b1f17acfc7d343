"""The conformance suite's server scenarios: one tool, resource, prompt or completion per behaviour it checks.

Names, arguments and results follow the suite's scenario texts (`conformance list`, and each scenario's description).
"""

from __future__ import annotations

import asyncio
import base64
import json

from mcp.server.mcpserver import Context, UserMessage
from mcp_types import (
    AudioContent,
    EmbeddedResource,
    ImageContent,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field
from pydantic.config import JsonValue

from app import ToolError, ask, completion, prompt, resource, tool

SCOPES = ["mcp.read"]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="


# ---- tools ---------------------------------------------------------------------------------------------------------
@tool(scopes=SCOPES)
def test_simple_text() -> str:
    """Returns simple text content."""
    return "This is a simple text response for testing."


@tool(scopes=SCOPES)
def test_image_content() -> list[ImageContent]:
    """Returns image content."""
    return [ImageContent(type="image", data=PNG, mime_type="image/png")]


@tool(scopes=SCOPES)
def test_audio_content() -> list[AudioContent]:
    """Returns audio content."""
    return [AudioContent(type="audio", data=WAV, mime_type="audio/wav")]


def _embedded(uri: str, text: str, mime_type: str = "text/plain") -> EmbeddedResource:
    return EmbeddedResource(type="resource", resource=TextResourceContents(uri=uri, mime_type=mime_type, text=text))


@tool(scopes=SCOPES)
def test_embedded_resource() -> list[EmbeddedResource]:
    """Returns an embedded resource."""
    return [_embedded("test://embedded-resource", "This is an embedded resource content.")]


@tool(scopes=SCOPES)
def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    """Returns text, an image and an embedded resource."""
    return [
        TextContent(type="text", text="Multiple content types test:"),
        ImageContent(type="image", data=PNG, mime_type="image/png"),
        _embedded("test://mixed-content-resource", '{"test": "data", "value": 123}', "application/json"),
    ]


@tool(scopes=SCOPES)
async def test_tool_with_logging(ctx: Context) -> str:
    """Sends three log messages while it runs."""
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message)
        await asyncio.sleep(0.02)
    return "Tool with logging executed successfully"


@tool(scopes=SCOPES)
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress three times."""
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100, f"Completed step {step} of 100")
        await asyncio.sleep(0.02)
    return "Progress reported"


@tool(scopes=SCOPES)
def test_error_handling() -> str:
    """Always fails."""
    raise ToolError("This tool intentionally returns an error for testing")


@tool(scopes=SCOPES)
async def test_sampling(prompt: str) -> str:
    """Asks the client's model to answer the prompt."""
    return f"LLM response: {await ask.sample(prompt, max_tokens=100)}"


class UserInfo(BaseModel):
    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


@tool(scopes=SCOPES)
async def test_elicitation(message: str) -> str:
    """Asks the user for a username and an email address."""
    answer = await ask.elicit(message, UserInfo)
    content = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"User response: action={answer.action}, content={content}"


class Defaults(BaseModel):
    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active", description="User status", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    verified: bool = Field(default=True, description="Verification status")


@tool(scopes=SCOPES)
async def test_elicitation_sep1034_defaults() -> str:
    """Asks the user with a default for every primitive type (SEP-1034)."""
    answer = await ask.elicit("Please provide user information", Defaults)
    content = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"Elicitation result: action={answer.action}, content={content}"


def _titled(*pairs: tuple[str, str]) -> list[JsonValue]:
    return [{"const": value, "title": title} for value, title in pairs]


class Enums(BaseModel):
    # Plain `str` fields: the schema shows the choices, and the suite answers with values of its own.
    untitledSingle: str = Field(
        description="Simple enum without titles", json_schema_extra={"enum": ["active", "inactive", "pending"]}
    )
    titledSingle: str = Field(
        description="Enum with titled options (oneOf)",
        json_schema_extra={"oneOf": _titled(("low", "Low"), ("medium", "Medium"), ("high", "High"))},
    )
    untitledMulti: list[str] = Field(
        description="Multi-select without titles",
        json_schema_extra={"items": {"type": "string", "enum": ["read", "write", "execute"]}},
    )
    titledMulti: list[str] = Field(
        description="Multi-select with titled options",
        json_schema_extra={"items": {"anyOf": _titled(("feature", "Feature"), ("bug", "Bug"), ("docs", "Docs"))}},
    )
    legacyEnum: str = Field(
        description="Legacy enum with enumNames",
        json_schema_extra={"enum": ["small", "medium", "large"], "enumNames": ["Small", "Medium", "Large"]},
    )


@tool(scopes=SCOPES)
async def test_elicitation_sep1330_enums() -> str:
    """Asks the user with every enum schema shape (SEP-1330)."""
    answer = await ask.elicit("Please select values using different enum schema types", Enums)
    content = answer.data.model_dump_json() if answer.action == "accept" else "{}"
    return f"Elicitation completed: action={answer.action}, content={content}"


@tool(scopes=SCOPES)
async def test_reconnection(ctx: Context) -> str:
    """Closes its SSE stream mid-call, so the client reconnects and resumes (SEP-1699)."""
    await ctx.info("Before disconnect")
    await ctx.close_sse_stream()
    await asyncio.sleep(0.2)
    await ctx.info("After reconnect")
    return "Reconnection test completed"


# The json-schema-2020-12 scenario: a hand-written 2020-12 schema, published as written.
SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


@tool(scopes=SCOPES, input_schema=SCHEMA_2020_12)
def json_schema_2020_12_tool(name: str = "", address: dict[str, str] | None = None) -> str:
    """Tool with JSON Schema 2020-12 features."""
    return f"name={name}, address={address}"


# ---- resources -----------------------------------------------------------------------------------------------------
@resource("test://static-text", scopes=SCOPES, mime_type="text/plain")
def static_text() -> str:
    """A static text resource."""
    return "This is the content of the static text resource."


@resource("test://static-binary", scopes=SCOPES, mime_type="image/png")
def static_binary() -> bytes:
    """A static binary resource (a PNG image)."""
    return base64.b64decode(PNG)


@resource("test://template/{id}/data", scopes=SCOPES, mime_type="application/json")
def template_data(id: str) -> str:
    """A resource template with one parameter."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@resource("test://watched-resource", scopes=SCOPES, mime_type="text/plain")
def watched_resource() -> str:
    """A resource clients subscribe to."""
    return "Watched resource content"


# ---- prompts -------------------------------------------------------------------------------------------------------
@prompt(scopes=SCOPES)
def test_simple_prompt() -> list[UserMessage]:
    """A prompt without arguments."""
    return [UserMessage(content=TextContent(type="text", text="This is a simple prompt for testing."))]


@prompt(scopes=SCOPES)
def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    """A prompt with two required arguments."""
    text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
    return [UserMessage(content=TextContent(type="text", text=text))]


@prompt(scopes=SCOPES)
def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    """A prompt that embeds a resource."""
    return [
        UserMessage(content=_embedded(resourceUri, "Embedded resource content for testing.")),
        UserMessage(content=TextContent(type="text", text="Please process the resource above.")),
    ]


@prompt(scopes=SCOPES)
def test_prompt_with_image() -> list[UserMessage]:
    """A prompt with an image."""
    return [
        UserMessage(content=ImageContent(type="image", data=PNG, mime_type="image/png")),
        UserMessage(content=TextContent(type="text", text="Please analyze the image above.")),
    ]


@completion("test_prompt_with_arguments")
def complete_arguments(argument: str, value: str, context: dict[str, str]) -> list[str]:
    """Suggests values that start with what was typed."""
    return [word for word in ("paris", "park", "party") if word.startswith(value)]
