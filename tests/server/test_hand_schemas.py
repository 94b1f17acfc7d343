"""`@tool(input_schema=...)`: a hand-written JSON Schema 2020-12 is published verbatim, checked at startup and
enforced on every call, over a real uvicorn with the official SDK client at both protocol eras."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp_types import TextContent

from app.catalog.discovery import discover
from app.catalog.registry import ToolDiscoveryError
from app.toolkit.toolslock import current_for
from tests.support.calls import mcp_client, modern_call
from tests.support.schema_tools.schema_tools import CONFORMANCE_SCHEMA, ORDER_SCHEMA
from tests.support.servers import ServerThread
from tests.support.values import SUPPORT

SCHEMA_TOOLS = SUPPORT / "schema_tools"
MODES = ["legacy", "2026-07-28"]
PROTOCOL = {"legacy": "2025-11-25", "2026-07-28": "2026-07-28"}  # what each client mode negotiates
SECRET_VALUE = "VALUE-7f3a-must-not-echo"


@pytest.fixture
def schema_server(serve: Callable[..., ServerThread]) -> ServerThread:
    return serve(tools={"dir": SCHEMA_TOOLS})


def _text(result: Any) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


@pytest.mark.parametrize("mode", MODES)
async def test_tools_list_publishes_the_schema_exactly_as_written(
    schema_server: ServerThread, token: Callable[..., str], mode: str
) -> None:
    async with mcp_client(schema_server.url, token(), mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert tools["json_schema_2020_12_tool"].input_schema == CONFORMANCE_SCHEMA
    assert tools["json_schema_2020_12_tool"].description == "Tool with JSON Schema 2020-12 features"
    assert tools["place_order"].input_schema == ORDER_SCHEMA


async def test_the_wire_keeps_schema_defs_and_additional_properties(
    schema_server: ServerThread, token: Callable[..., str]
) -> None:
    """The raw JSON the conformance scenario reads: `$schema`, `$defs` and `additionalProperties: false`."""
    headers = {"MCP-Protocol-Version": "2026-07-28", "Accept": "application/json, text/event-stream"}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/list",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }
    async with httpx2.AsyncClient(base_url=schema_server.url) as http:
        response = await http.post(
            "/mcp", json=body, headers={**headers, "Mcp-Method": "tools/list", "Authorization": f"Bearer {token()}"}
        )
    assert response.status_code == 200, response.text
    tools = {t["name"]: t for t in _jsonrpc(response)["result"]["tools"]}
    schema = tools["json_schema_2020_12_tool"]["inputSchema"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "address" in schema["$defs"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("mode", MODES)
async def test_valid_arguments_reach_the_function_as_json(
    schema_server: ServerThread, token: Callable[..., str], mode: str
) -> None:
    async with mcp_client(schema_server.url, token(), mode=mode) as client:
        assert client.protocol_version == PROTOCOL[mode]
        hello = await client.call_tool("json_schema_2020_12_tool", {"name": "Ada", "address": {"city": "London"}})
        order = await client.call_tool(
            "place_order", {"customer": "c1", "lines": [{"sku": "ABC-1", "qty": 2}, {"sku": "XYZ-9", "qty": 3}]}
        )
    assert not hello.is_error and _text(hello) == "Ada lives in London"
    assert not order.is_error
    assert order.structured_content == {"customer": "c1", "items": 5, "rush": False}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"name": SECRET_VALUE, "extra": SECRET_VALUE}, "/: has a property the schema does not allow"),
        ({"name": 7}, "/name: must be of type string"),
        ({"address": {"city": [SECRET_VALUE]}}, "/address/city: must be of type string"),
        ({"address": SECRET_VALUE}, "/address: must be of type object"),
    ],
)
async def test_invalid_arguments_are_a_tool_error_that_names_the_problem_not_the_value(
    schema_server: ServerThread,
    token: Callable[..., str],
    mode: str,
    arguments: dict[str, Any],
    expected: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    async with mcp_client(schema_server.url, token(), mode=mode) as client:
        result = await client.call_tool("json_schema_2020_12_tool", arguments)
    assert result.is_error
    text = _text(result)
    assert "invalid arguments for tool 'json_schema_2020_12_tool'" in text and expected in text
    assert SECRET_VALUE not in text and "extra" not in text
    captured = capsys.readouterr()  # the audit log (stdout) and the server's JSON logs
    assert "invalid arguments for tool" in caplog.text and '"event":"tool_call"' in captured.out  # both looked at
    assert SECRET_VALUE not in caplog.text + captured.out + captured.err


async def test_order_refusals_name_schema_paths_and_missing_properties(
    schema_server: ServerThread, token: Callable[..., str]
) -> None:
    async with mcp_client(schema_server.url, token(), mode="2026-07-28") as client:
        missing = await client.call_tool("place_order", {"lines": []})
        bad_line = await client.call_tool("place_order", {"customer": "c", "lines": [{"sku": SECRET_VALUE, "qty": 1}]})
    assert missing.is_error and "missing required 'customer'" in _text(missing)
    assert "/lines: fails minItems (1)" in _text(missing)
    assert bad_line.is_error and "/lines/0/sku: fails pattern (^[A-Z]{3}-[0-9]+$)" in _text(bad_line)
    assert SECRET_VALUE not in _text(bad_line)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ARGUMENTS = st.dictionaries(
    st.sampled_from(["customer", "lines", "rush", "name", "address", "other"]) | st.text(max_size=8),
    JSON_VALUES,
    max_size=5,
)


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tool=st.sampled_from(["place_order", "json_schema_2020_12_tool"]), arguments=ARGUMENTS)
def test_fuzzed_argument_types_never_give_a_500(
    schema_server: ServerThread, token: Callable[..., str], tool: str, arguments: dict[str, Any]
) -> None:
    headers, body = modern_call(tool, arguments)
    with httpx2.Client(base_url=schema_server.url) as http:
        response = http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token()}"})
    assert response.status_code in (200, 400), response.text
    message = _jsonrpc(response)
    result = message.get("result")
    assert result is not None or message["error"]["code"] == -32602, message
    if result is not None and result.get("isError"):
        assert "invalid arguments for tool" in json.dumps(result)


def _jsonrpc(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC message of a JSON or single-event SSE response."""
    if response.headers["content-type"].startswith("application/json"):
        return response.json()  # type: ignore[no-any-return]
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])  # type: ignore[no-any-return]


# ---- startup: a broken schema, or one the function cannot honour, stops the server naming the tool -------------


def _tools_dir(tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "schema_cases"
    folder.mkdir()
    (folder / "case.py").write_text("from app import tool\n\n" + source)
    return folder


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ('{"type": "object", "properties": {"a": {"type": "strnig"}}}', "not a valid JSON Schema"),
        ('{"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}', "refers outside"),
        ('{"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}', "names nothing"),
        ('{"type": "array"}', '"type": "object"'),
        ('{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}', "2020-12"),
        ('{"type": "object", "properties": {"a": {"enum": {1, 2}}}}', "JSON values only"),
    ],
)
def test_a_broken_schema_fails_discovery_naming_the_tool(tmp_path: Path, schema: str, problem: str) -> None:
    folder = _tools_dir(tmp_path, f"@tool(public=True, input_schema={schema})\ndef broken(a=None):\n    return a\n")
    with pytest.raises(ToolDiscoveryError, match="tool 'broken'") as refused:
        discover(folder)
    assert problem in str(refused.value)


@pytest.mark.parametrize(
    ("signature", "problem"),
    [
        ("a, b=None", "b are not properties"),
        ("a=None, *, c", "c have no default"),
        ("", "a, c are not parameters"),
        ("*args, **kw", "positional-only or *args"),
    ],
)
def test_a_function_that_cannot_take_the_schema_fails_startup(tmp_path: Path, signature: str, problem: str) -> None:
    schema = '{"type": "object", "properties": {"a": {"type": "string"}, "c": {"type": "string"}}}'
    source = f"@tool(public=True, input_schema={schema})\ndef mismatched({signature}):\n    return 1\n"
    folder = _tools_dir(tmp_path, source)
    with pytest.raises(ToolDiscoveryError, match="tool 'mismatched'") as refused:
        current_for(folder)  # builds the server exactly as startup does
    assert problem in str(refused.value)


def test_sdk_seams_the_hand_written_schema_relies_on() -> None:
    """The SDK publishes `Tool.parameters` and validates through `fn_metadata.arg_model`, read per call: if an SDK
    upgrade changes either, this names the broken assumption (app/server/hand_schemas.py)."""
    from pydantic import ValidationError

    from app.catalog.registry import Spec
    from app.server.hand_schemas import sdk_tool
    from tests.support.schema_tools.schema_tools import json_schema_2020_12_tool

    spec: Spec = json_schema_2020_12_tool.__mcp_spec__  # type: ignore[attr-defined]
    tool = sdk_tool(spec, json_schema_2020_12_tool)
    assert tool.parameters == CONFORMANCE_SCHEMA, "the SDK no longer publishes Tool.parameters as the input schema"
    valid = tool.fn_metadata.validate_arguments({"name": "Ada", "address": {"city": "Oslo"}})
    assert valid == {"name": "Ada", "address": {"city": "Oslo"}}, "FuncMetadata.validate_arguments changed"
    with pytest.raises(ValidationError, match="must be of type string"):
        tool.fn_metadata.validate_arguments({"name": 1})


MARK = "\u2603"  # every string a caller sends below carries it; no schema or message text does
MARKED_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20).map(MARK.__add__),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8).map(MARK.__add__), inner, max_size=4)
    ),
    max_leaves=12,
)
MARKED_ARGUMENTS = st.dictionaries(
    st.sampled_from(["customer", "lines", "rush"]) | st.text(max_size=8).map(MARK.__add__), MARKED_VALUES, max_size=5
)


@pytest.mark.slow  # a subprocess or many generated examples: the whole suite (make test-all)
@settings(max_examples=300)
@given(arguments=MARKED_ARGUMENTS)
def test_a_refusal_never_quotes_what_the_caller_sent(arguments: dict[str, Any]) -> None:
    """In process, many examples: every refusal is a pydantic ValidationError (the SDK's argument error), bounded,
    and no string the caller sent (keys included) appears in it."""
    from pydantic import ValidationError

    from app.server.build import invalid_arguments
    from app.server.hand_schemas import sdk_tool
    from tests.support.schema_tools.schema_tools import place_order

    tool = sdk_tool(place_order.__mcp_spec__, place_order)  # type: ignore[attr-defined]
    try:
        tool.fn_metadata.validate_arguments(arguments)
    except ValidationError as exc:
        message = invalid_arguments("place_order", exc)
        assert len(message) < 1200
        assert MARK not in message, message
