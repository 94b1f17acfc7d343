"""Tool authors get the MCP surface: Context logging and progress, and a working `logging/setLevel`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp_types import LoggingMessageNotificationParams

from tests.support.calls import mcp_client
from tests.support.servers import ServerThread

# Handshake-era features (logging/setLevel, resources/subscribe, ctx.log) are exercised on purpose: the SDK marks
# them deprecated for 2026-07-28, and clients of 2025-06-18 and 2025-11-25 still use them.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


async def test_set_level_filters_what_the_tool_logs(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = serve(mcp={"stateless": False})
    received: list[LoggingMessageNotificationParams] = []

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with mcp_client(server.url, token(), logging_callback=on_log) as client:
        assert client.session.server_capabilities is not None
        assert client.session.server_capabilities.logging is not None
        await client.call_tool("probe_context", {"steps": 1})
        assert {m.level for m in received} == {"info", "warning"}
        received.clear()
        await client.set_logging_level("warning")
        await client.call_tool("probe_context", {"steps": 1})
    assert [m.level for m in received] == ["warning"]


async def test_progress_reaches_the_client(app_server: ServerThread, token: Callable[..., str]) -> None:
    updates: list[tuple[float, Any]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, message))

    async with mcp_client(app_server.url, token()) as client:
        result = await client.call_tool("probe_context", {"steps": 3}, progress_callback=on_progress)
    assert result.structured_content == {"result": "done"}
    assert [p for p, _ in updates] == [1, 2, 3]


async def test_resource_subscriptions_for_handshake_era_clients(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    import anyio
    from mcp_types import ResourceUpdatedNotification

    server = serve(mcp={"stateless": False})
    updated = anyio.Event()
    uris: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            uris.append(str(message.params.uri))
            updated.set()

    async with mcp_client(server.url, token(), message_handler=on_message) as client:
        caps = client.session.server_capabilities
        assert caps is not None and caps.resources is not None and caps.resources.subscribe
        await client.subscribe_resource("probe://counter")
        await client.call_tool("probe_bump", {})
        with anyio.fail_after(5):
            await updated.wait()
        assert uris == ["probe://counter"]
        await client.unsubscribe_resource("probe://counter")
        updated = anyio.Event()
        await client.call_tool("probe_bump", {})
        with anyio.move_on_after(0.5):
            await updated.wait()
    assert uris == ["probe://counter"]  # nothing after unsubscribing


async def test_subscribing_needs_what_reading_needs(app_server: ServerThread, token: Callable[..., str]) -> None:
    import httpx2

    from tests.support.calls import rpc

    headers = {
        "Authorization": f"Bearer {token('mcp.read')}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    async with httpx2.AsyncClient(base_url=app_server.url) as http:
        denied = await http.post(
            "/mcp", json=rpc("resources/subscribe", {"uri": "probe://secret-plans"}), headers=headers
        )
    assert denied.status_code == 403
    assert "files.write" in denied.headers["www-authenticate"]


async def test_completions_dispatch_per_prompt_and_respect_authorization(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    from mcp_types import PromptReference

    from tests.support.values import REPO

    server = serve(tools={"dir": REPO / "tools"})
    async with mcp_client(server.url, token("notes.read notes.write")) as client:
        caps = client.session.server_capabilities
        assert caps is not None and caps.completions is not None
        await client.call_tool("create_note", {"title": "Kubernetes upgrade plan"})
        await client.call_tool("create_note", {"title": "Kafka lag"})
        result = await client.complete(
            PromptReference(type="ref/prompt", name="summarize_notes"), {"name": "topic", "value": "k"}
        )
    assert result.completion.values == ["kafka", "kubernetes"]
    import httpx2

    from tests.support.calls import rpc

    headers = {
        "Authorization": f"Bearer {token('mcp.read')}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    body = rpc(
        "completion/complete",
        {"ref": {"type": "ref/prompt", "name": "summarize_notes"}, "argument": {"name": "topic", "value": "k"}},
    )
    async with httpx2.AsyncClient(base_url=server.url) as http:
        denied = await http.post("/mcp", json=body, headers=headers)
    assert denied.status_code == 403


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_rich_content_and_tool_errors(app_server: ServerThread, token: Callable[..., str], mode: str) -> None:
    async with mcp_client(app_server.url, token(), mode=mode) as client:
        rich = await client.call_tool("probe_rich", {})
        failed = await client.call_tool("probe_fail", {"reason": "no"})
    assert [block.type for block in rich.content] == ["text", "image", "audio", "resource"]
    assert rich.content[1].mime_type == "image/png"  # type: ignore[union-attr]
    assert failed.is_error
    assert failed.content[0].text.endswith("cannot do that: no")  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_argument_errors_name_fields_but_never_echo_values(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str
) -> None:
    from tests.support.values import REPO

    server = serve(tools={"dir": REPO / "tools"})
    sentinel = "confidential-sentinel-" + "x" * 200  # over the 200-character limit of `query`
    async with mcp_client(server.url, token("notes.read"), mode=mode) as client:
        result = await client.call_tool("search_notes", {"query": sentinel, "limit": 0})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "query" in text and "limit" in text and "string_too_long" in text
    assert "confidential-sentinel" not in text and "input_value" not in text


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_prompt_mistakes_are_invalid_params_that_never_echo_values(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str
) -> None:
    """The SDK answers each of these with -32603 Internal error; they are the caller's mistakes (-32602)."""
    from mcp.shared.exceptions import MCPError

    from tests.support.values import REPO

    server = serve(tools={"dir": REPO / "tools"})
    errors = []
    async with mcp_client(server.url, token("notes.read"), mode=mode) as client:
        for name, arguments in [
            ("no_such_prompt", {}),
            ("summarize_notes", {}),
            ("summarize_notes", {"topic": "k", "confidential-sentinel": "confidential-sentinel"}),
        ]:
            with pytest.raises(MCPError) as refused:
                await client.get_prompt(name, arguments)
            errors.append(refused.value.error)
        fine = await client.get_prompt("summarize_notes", {"topic": "k"})
    assert [e.code for e in errors] == [-32602, -32602, -32602]
    assert errors[0].message == "unknown prompt 'no_such_prompt'"
    assert errors[1].message == "prompt 'summarize_notes' needs argument(s): topic"
    assert "unexpected_keyword_argument" in errors[2].message
    assert "input_value" not in errors[2].message and errors[2].message.count("confidential-sentinel") == 1  # the key
    assert "'k'" in fine.messages[0].content.text  # type: ignore[union-attr]
