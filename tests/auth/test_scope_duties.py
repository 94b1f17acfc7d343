"""2026-07-28 duties of a resource server: scope hierarchies honoured by every decision (MCP__SCOPE_IMPLIES), and
per-caller lists sent with `cacheScope: "private"` and `ttlMs` (MCP__LIST_TTL_MS). Real uvicorn, official SDK client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from mcp_types import CacheableResult
from pydantic import ValidationError

from app.settings import McpSettings
from tests.support.calls import mcp_client, modern_call
from tests.support.servers import ServerThread
from tests.support.values import SUPPORT

SCHEMA_TOOLS = SUPPORT / "schema_tools"
NOTES_ROUTES = SUPPORT / "notes_routes"
MODES = ["legacy", "2026-07-28"]
IMPLIES = {"notes.admin": ["notes.write"], "notes.write": ["notes.read"]}


def _notes_server(serve: Callable[..., ServerThread], **mcp: Any) -> ServerThread:
    return serve(tools={"dir": SCHEMA_TOOLS}, routes={"dir": NOTES_ROUTES}, mcp=mcp)


async def _listed(server: ServerThread, token: str, mode: str) -> dict[str, set[str]]:
    async with mcp_client(server.url, token, mode=mode) as client:
        return {
            "tools": {t.name for t in (await client.list_tools()).tools},
            "prompts": {p.name for p in (await client.list_prompts()).prompts},
            "resources": {str(r.uri) for r in (await client.list_resources()).resources},
            "templates": {t.uri_template for t in (await client.list_resource_templates()).resource_templates},
        }


NOTES_LISTED = {"read_notes", "notes_prompt", "notes://all", "notes://items/{item}"}


@pytest.mark.parametrize("mode", MODES)
async def test_an_implied_scope_is_honoured_for_tools_lists_resources_prompts_and_routes(
    serve: Callable[..., ServerThread], token: Callable[..., str], mode: str
) -> None:
    server = _notes_server(serve, scope_implies=IMPLIES)
    admin = token("notes.admin")  # implies notes.write, which implies notes.read: transitive
    async with mcp_client(server.url, admin, mode=mode) as client:
        assert client.protocol_version == {"legacy": "2025-11-25", "2026-07-28": "2026-07-28"}[mode]
        called = await client.call_tool("read_notes", {})
        read = await client.read_resource("notes://items/7")
        prompt = await client.get_prompt("notes_prompt")
    assert not called.is_error and called.structured_content == {"result": "the notes"}
    assert read.contents[0].text == "note 7"  # type: ignore[union-attr]
    assert prompt.messages
    listed = await _listed(server, admin, mode)
    everything = set().union(*listed.values())
    assert everything >= NOTES_LISTED
    async with httpx2.AsyncClient(base_url=server.url) as http:
        route = await http.get("/api/notes", headers={"Authorization": f"Bearer {admin}"})
    assert route.status_code == 200 and route.json() == {"notes": "ok"}


async def test_without_the_implication_the_same_token_is_refused_everywhere(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = _notes_server(serve)
    writer = token("notes.write")
    headers, body = modern_call("read_notes")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        call = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {writer}"})
        route = await http.get("/api/notes", headers={"Authorization": f"Bearer {writer}"})
    notes_read = f"{server.url}/mcp/notes.read"  # scopes are requested as {App ID URI}/{scope}
    for refused in (call, route):
        assert refused.status_code == 403
        assert f'scope="{notes_read}"' in refused.headers["www-authenticate"]
    listed = await _listed(server, writer, "2026-07-28")
    assert not NOTES_LISTED & set().union(*listed.values())


async def test_the_step_up_challenge_still_names_the_declared_scope(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    """A caller with neither scope is told to get the one the tool declares, not the one that implies it."""
    server = _notes_server(serve, scope_implies=IMPLIES)
    headers, body = modern_call("read_notes")
    async with httpx2.AsyncClient(base_url=server.url) as http:
        call = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token('mcp.read')}"})
    assert call.status_code == 403
    assert f'scope="{server.url}/mcp/notes.read"' in call.headers["www-authenticate"]


def test_implications_are_transitive_and_unknown_scopes_are_allowed() -> None:
    settings = McpSettings(scope_implies={"a": ["b"], "b": ["c", "d"], "x": ["never.declared"]})
    assert settings.implied_scopes == {
        "a": frozenset({"b", "c", "d"}),
        "b": frozenset({"c", "d"}),
        "x": frozenset({"never.declared"}),
    }


@pytest.mark.parametrize(
    ("implies", "problem"),
    [
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, "cycle: a > b > c > a"),
        ({"a": ["a"]}, "cycle: a > a"),
        ({"a": ["has space"]}, "is not a scope name"),
    ],
)
def test_a_cycle_or_a_bad_name_is_refused_at_startup(implies: dict[str, list[str]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        McpSettings(scope_implies=implies)


def test_the_setting_reads_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import Settings

    monkeypatch.setenv("MCP__SCOPE_IMPLIES", '{"notes.write": ["notes.read"]}')
    monkeypatch.setenv("MCP__LIST_TTL_MS", "5000")
    settings = Settings(_env_file=None, app_env="development")
    assert settings.mcp.implied_scopes == {"notes.write": frozenset({"notes.read"})}
    assert settings.mcp.list_ttl_ms == 5000


# ---- cacheScope / ttlMs ---------------------------------------------------------------------------------------


async def test_lists_filtered_per_caller_are_private_with_the_configured_ttl(
    serve: Callable[..., ServerThread], token: Callable[..., str]
) -> None:
    server = _notes_server(serve, list_ttl_ms=12_345)
    async with mcp_client(server.url, token("mcp.read notes.read"), mode="2026-07-28") as client:
        results: list[CacheableResult] = [
            await client.list_tools(),
            await client.list_prompts(),
            await client.list_resources(),
            await client.list_resource_templates(),
        ]
    for result in results:
        assert (result.ttl_ms, result.cache_scope) == (12_345, "private"), type(result).__name__
