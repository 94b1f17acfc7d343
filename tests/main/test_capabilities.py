"""Advertised equals honoured, per mode (sessions, stateless) and era (2025-11-25, 2026-07-28): every capability the
server advertises is exercised and works; every one it does not is refused. The capability names come from the
SDK's own `ServerCapabilities`, so a capability the SDK adds is caught here until this test exercises it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError
from mcp_types import LoggingMessageNotificationParams, ResourceUpdatedNotification, ServerCapabilities

from tests.support.calls import mcp_client
from tests.support.servers import ServerThread
from tests.support.values import SUPPORT

# Handshake-era features (logging/setLevel, resources/subscribe, ctx.log) are exercised on purpose: the SDK marks
# them deprecated for 2026-07-28, and clients of 2025-06-18 and 2025-11-25 still use them.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")

SESSION_TOOLS = SUPPORT / "session_tools"
MODES = [("sessions", "legacy"), ("sessions", "2026-07-28"), ("stateless", "legacy"), ("stateless", "2026-07-28")]


@pytest.mark.parametrize(("mode", "era"), MODES, ids=[f"{m}-{e}" for m, e in MODES])
async def test_every_advertised_capability_works_and_no_other(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str, era: str
) -> None:
    server = serve(tools={"dir": SESSION_TOOLS}, mcp={"stateless": mode == "stateless"})
    logs: list[str] = []
    updated = anyio.Event()

    async def on_log(params: LoggingMessageNotificationParams) -> None:
        logs.append(params.level)

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updated.set()

    level: Any = "error" if era != "legacy" else None
    options = {"logging_callback": on_log, "message_handler": on_message, "log_level": level}
    # `auto` discovers (server/discover), so the client sees what a 2026-07-28 server advertises.
    async with mcp_client(server.url, token(), mode="legacy" if era == "legacy" else "auto", **options) as client:
        assert client.session.protocol_version == ("2025-11-25" if era == "legacy" else era)
        caps = client.session.server_capabilities
        assert caps is not None
        unexercised = {name for name in ServerCapabilities.model_fields if getattr(caps, name) is not None}
        unexercised -= {"experimental", "extensions"}  # declarations, not methods: none are set here
        assert caps.experimental is None and caps.extensions is None

        assert caps.tools is not None  # the catalog has tools: listed and callable
        assert (await client.call_tool("push_change", {})).is_error is False
        unexercised.discard("tools")

        if caps.prompts is not None:
            assert (await client.list_prompts()).prompts == []
            unexercised.discard("prompts")

        assert caps.resources is not None
        assert {str(r.uri) for r in (await client.list_resources()).resources} == {"push://value"}
        await _subscriptions(client, era, bool(caps.resources.subscribe), updated)
        unexercised.discard("resources")

        await _logging(client, era, caps.logging is not None, logs)
        unexercised.discard("logging")

        if caps.completions is None:  # no @completion in this catalog
            with pytest.raises(MCPError):
                await client.complete(_prompt_ref(), {"name": "x", "value": ""})
        else:
            unexercised.discard("completions")
        unexercised.discard("completions")

        assert caps.tasks is None  # the framework serves no tasks
        unexercised.discard("tasks")
    assert not unexercised, f"advertised but not exercised here: {unexercised}"


async def _subscriptions(client: Client, era: str, advertised: bool, updated: anyio.Event) -> None:
    if era == "legacy":
        if not advertised:
            with pytest.raises(MCPError):
                await client.subscribe_resource("push://value")
            return
        await client.subscribe_resource("push://value")
        await client.call_tool("push_change", {})
        with anyio.fail_after(10):
            await updated.wait()
        return
    assert advertised  # 2026-07-28: `subscriptions/listen`, served in every mode
    async with client.listen(resource_subscriptions=["push://value"]) as subscription:
        await client.call_tool("push_change", {})
        with anyio.fail_after(10):
            event = await subscription.__anext__()
    assert "push://value" in str(event)


async def _logging(client: Client, era: str, advertised: bool, logs: list[str]) -> None:
    if era == "legacy" and not advertised:
        with pytest.raises(MCPError):
            await client.set_logging_level("error")
        return
    assert advertised
    if era == "legacy":
        await client.set_logging_level("error")
    logs.clear()
    await client.call_tool("push_logs", {})
    assert logs == ["error"]  # asked for error: debug and info stay away


def _prompt_ref() -> Any:
    from mcp_types import PromptReference

    return PromptReference(type="ref/prompt", name="absent")
