"""Two MCP servers in one app, for real: one uvicorn, the official SDK client, tokens from the Entra stand-in.

The first server (`hr`'s tools at /mcp, the AZUREAD__* registration) and a second one (`SERVERS__FINANCE__*`, its
tools at /finance/mcp, its own registration) declare the same scope name, `notes.read`, and the same resource URI,
`notes://recent`. Each serves only its own catalog, accepts only its own tokens, and points its challenges at its
own Protected Resource Metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference

from app.main import create_app
from app.settings import Settings
from tests.support.calls import mcp_client, modern_call
from tests.support.entra import EntraStandIn
from tests.support.otel import OtelMemory
from tests.support.servers import ServerThread, free_port
from tests.support.values import CLIENT_ID, SUPPORT, TENANT, settings_for

HR_TOOLS, FINANCE_TOOLS = SUPPORT / "two_servers" / "hr", SUPPORT / "two_servers" / "finance" / "tools"
FINANCE_ID = "f1000000-0000-4000-8000-00000000f111"
FINANCE = {"path": "/finance/mcp", "client_id": FINANCE_ID, "tools_dir": str(FINANCE_TOOLS)}


def two_servers(entra: EntraStandIn, port: int, **overrides: Any) -> Settings:
    return settings_for(
        entra, port, tools={"dir": HR_TOOLS, "lock_mode": "warn"}, servers={"finance": FINANCE}, **overrides
    )


@pytest.fixture
def app(serve: Callable[..., ServerThread]) -> ServerThread:
    return serve(tools={"dir": str(HR_TOOLS)}, servers={"finance": FINANCE})


@pytest.fixture
def hr_token(entra: EntraStandIn) -> Callable[..., str]:
    return lambda scopes="notes.read", **kw: entra.token(tenant=TENANT, audience=CLIENT_ID, scopes=scopes, **kw)


@pytest.fixture
def finance_token(entra: EntraStandIn) -> Callable[..., str]:
    return lambda scopes="notes.read", **kw: entra.token(tenant=TENANT, audience=FINANCE_ID, scopes=scopes, **kw)


async def test_each_server_lists_and_calls_only_its_own_tools_resources_and_prompts(
    app: ServerThread, hr_token: Callable[..., str], finance_token: Callable[..., str]
) -> None:
    async with mcp_client(app.url, hr_token()) as hr:
        assert {t.name for t in (await hr.list_tools()).tools} == {"hr_lookup"}  # hr.admin is not granted
        assert {p.name for p in (await hr.list_prompts()).prompts} == {"hr_prompt"}
        assert (await hr.call_tool("hr_lookup", {"name": "ada"})).content[0].text == "hr:ada"  # type: ignore[union-attr]
        called = await hr.call_tool("finance_lookup", {})
        assert called.is_error  # another server's tool is unknown here
        read = await hr.read_resource("notes://recent")
        assert read.contents[0].text == "hr notes"  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await hr.get_prompt("finance_prompt", {"topic": "x"})
        own = await hr.complete(PromptReference(type="ref/prompt", name="hr_prompt"), {"name": "topic", "value": "l"})
        assert own.completion.values == ["leave"]
        other = await hr.complete(
            PromptReference(type="ref/prompt", name="finance_prompt"), {"name": "topic", "value": ""}
        )
        assert other.completion.values == []  # finance's completion never runs here
    async with mcp_client(app.url, finance_token(), path="/finance/mcp") as finance:
        assert {t.name for t in (await finance.list_tools()).tools} == {"finance_lookup"}
        assert {p.name for p in (await finance.list_prompts()).prompts} == {"finance_prompt"}
        answer = await finance.call_tool("finance_lookup", {"account": "42"})
        assert answer.content[0].text == "finance:42"  # type: ignore[union-attr]
        assert (await finance.call_tool("hr_lookup", {})).is_error
        read = await finance.read_resource("notes://recent")
        assert read.contents[0].text == "finance notes"  # type: ignore[union-attr]
        with pytest.raises(MCPError):
            await finance.get_prompt("hr_prompt", {"topic": "x"})


async def test_a_token_for_one_server_is_a_401_at_the_other_naming_the_others_metadata(
    app: ServerThread, hr_token: Callable[..., str], finance_token: Callable[..., str]
) -> None:
    headers, body = modern_call("finance_lookup")
    async with httpx2.AsyncClient(base_url=app.url) as http:
        # hr's notes.read (same tenant, same short scope name) at finance: not its audience.
        at_finance = await http.post(
            "/finance/mcp", json=body, headers={**headers, "Authorization": f"Bearer {hr_token()}"}
        )
        at_hr = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {finance_token()}"})
    assert at_finance.status_code == 401, at_finance.text
    challenge = at_finance.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{app.url}/.well-known/oauth-protected-resource/finance/mcp"' in challenge
    assert at_hr.status_code == 401
    assert (
        f'resource_metadata="{app.url}/.well-known/oauth-protected-resource/mcp"' in at_hr.headers["www-authenticate"]
    )


async def test_hr_notes_read_cannot_read_finances_notes_resource(
    app: ServerThread, hr_token: Callable[..., str]
) -> None:
    """The same scope name and the same resource URI on both: only the audience tells them apart, and it does."""
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    read = {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "notes://recent"}}
    async with httpx2.AsyncClient(base_url=app.url) as http:
        refused = await http.post(
            "/finance/mcp", json=read, headers={**headers, "Authorization": f"Bearer {hr_token()}"}
        )
    assert refused.status_code == 401 and "finance notes" not in refused.text


async def test_each_path_has_its_own_protected_resource_metadata(app: ServerThread) -> None:
    async with httpx2.AsyncClient(base_url=app.url) as http:
        hr = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
        finance = (await http.get("/.well-known/oauth-protected-resource/finance/mcp")).json()
        root = (await http.get("/.well-known/oauth-protected-resource")).json()
        unknown = await http.get("/.well-known/oauth-protected-resource/payroll/mcp")
    assert hr["resource"] == f"{app.url}/mcp" and root == hr
    # hr's own (its tools, and the repository's routes/ beside the first server), each under its App ID URI.
    assert {f"{app.url}/mcp/hr.admin", f"{app.url}/mcp/notes.read"} <= set(hr["scopes_supported"])
    assert all(scope.startswith(f"{app.url}/mcp/") for scope in hr["scopes_supported"])
    assert finance["resource"] == f"{app.url}/finance/mcp"
    assert finance["scopes_supported"] == [f"{app.url}/finance/mcp/notes.read"]
    assert hr["authorization_servers"] == finance["authorization_servers"]  # one tenant
    assert unknown.status_code == 404


async def test_a_scope_challenge_names_the_servers_own_scope_uri(
    app: ServerThread, hr_token: Callable[..., str]
) -> None:
    headers, body = modern_call("hr_admin")
    async with httpx2.AsyncClient(base_url=app.url) as http:
        answer = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {hr_token()}"})
    assert answer.status_code == 403
    assert f'scope="{app.url}/mcp/hr.admin"' in answer.headers["www-authenticate"]


async def test_per_caller_limits_are_per_server(
    serve: Callable[..., ServerThread], hr_token: Callable[..., str], finance_token: Callable[..., str]
) -> None:
    """The same principal (one oid) spends its budget at hr; finance's budget for that principal is untouched."""
    app = serve(tools={"dir": str(HR_TOOLS)}, servers={"finance": FINANCE}, rate_limit={"default": "3/minute"})
    oid = "aaaaaaaa-0000-4000-8000-0000000000b1"
    statuses: dict[str, list[int]] = {"/mcp": [], "/finance/mcp": []}
    async with httpx2.AsyncClient(base_url=app.url) as http:
        for path, token, tool in (
            ("/mcp", hr_token(oid=oid), "hr_lookup"),
            ("/finance/mcp", finance_token(oid=oid), "finance_lookup"),
        ):
            headers, body = modern_call(tool)
            for _ in range(4 if path == "/mcp" else 3):
                answer = await http.post(path, json=body, headers={**headers, "Authorization": f"Bearer {token}"})
                statuses[path].append(answer.status_code)
    assert statuses["/mcp"] == [200, 200, 200, 429]
    assert statuses["/finance/mcp"] == [200, 200, 200]


async def test_audit_records_and_metrics_name_the_server(
    entra: EntraStandIn, tmp_path: Path, otel: OtelMemory, finance_token: Callable[..., str]
) -> None:
    port = free_port()
    audit = tmp_path / "audit.jsonl"
    settings = two_servers(entra, port, audit={"sink": f"file:{audit}"})
    with ServerThread(create_app(settings), port=port) as app:
        async with mcp_client(app.url, finance_token(), path="/finance/mcp") as finance:
            await finance.call_tool("finance_lookup", {})
        async with httpx2.AsyncClient(base_url=app.url) as http:
            await http.post("/mcp", json={}, headers={"Authorization": "Bearer not-a-token"})
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    calls = [r for r in records if r["event"] == "tool_call"]
    assert [(r["server"], r["target"]) for r in calls] == [("finance", "finance_lookup")]
    failures = [r for r in records if r["event"] == "authn_failure"]
    assert failures and {r["server"] for r in failures} == {"secure-mcp-server"}
    durations = otel.points("mcp.server.operation.duration")
    assert any(p.attributes.get("server") == "finance" for p in durations)
    assert any((s.attributes or {}).get("mcp.server.name") == "finance" for s in otel.spans.get_finished_spans())


def test_startup_refuses_ambiguous_servers_in_one_line(entra: EntraStandIn) -> None:
    port = free_port()
    cases = {
        "same path": {"path": "/mcp", "client_id": FINANCE_ID},
        "same App ID URI": {**FINANCE, "app_id_uri": f"http://127.0.0.1:{port}/mcp"},
    }
    for what, finance in cases.items():
        with pytest.raises(
            ValueError, match=f"SERVERS__FINANCE and the first server .* have the same {what.split()[1]}"
        ):
            settings_for(entra, port, servers={"finance": finance})
    # One client id, or one audience, for two servers: each would accept the other's tokens.
    for finance in ({**FINANCE, "client_id": CLIENT_ID}, {**FINANCE, "audiences": f"{FINANCE_ID},{CLIENT_ID}"}):
        with pytest.raises(
            ValueError, match=f"SERVERS__FINANCE and the first server .* have the same audience '{CLIENT_ID}'"
        ):
            settings_for(entra, port, servers={"finance": finance})
    with pytest.raises(ValueError, match="production mode needs SERVERS__FINANCE__CLIENT_ID"):
        settings_for(entra, port, servers={"finance": {"path": "/finance/mcp"}})
    with pytest.raises(ValueError, match="AUTH_SERVER__ENABLED needs each server's credential: SERVERS__FINANCE__"):
        settings_for(
            entra,
            port,
            servers={"finance": FINANCE},
            azuread={"client_secret": "first-server-secret"},
            auth_server={"enabled": True},
        )
    with pytest.raises(ValueError, match="a server's name is"):
        settings_for(entra, port, servers={"Fin_1": FINANCE})
    with pytest.raises(ValueError, match="must start with '/'"):
        settings_for(entra, port, servers={"finance": {**FINANCE, "path": "finance/mcp/"}})


def test_a_server_without_its_lock_stops_production_startup(entra: EntraStandIn, tmp_path: Path) -> None:
    from app.server.toolslock import ToolLockError

    lock = tmp_path / "finance.lock"  # not there
    settings = settings_for(
        entra,
        free_port(),
        tools={"dir": str(HR_TOOLS), "lock_mode": "enforce", "lock_file": str(tmp_path / "hr.lock")},
        servers={"finance": {**FINANCE, "lock_file": str(lock)}},
    )
    from app.toolkit.toolslock import current_for, render

    (tmp_path / "hr.lock").write_text(render(current_for(HR_TOOLS)))  # the first server's lock is fine
    with pytest.raises(ToolLockError, match=r"no tools\.lock.*`make tools-lock SERVER=finance`"):
        create_app(settings)
    lock.write_text(render(current_for(FINANCE_TOOLS)))
    create_app(settings)  # with its lock, it starts


def test_the_single_server_default_has_no_servers_and_unchanged_names(entra: EntraStandIn) -> None:
    settings = settings_for(entra, free_port())
    assert settings.servers == {} and [s.key for s in settings.served()] == [""]
    app = create_app(settings)
    assert [core.server.path for core in app.state.cores] == ["/mcp"]
    assert app.state.cores[0].observer.server is None  # records and metrics keep their single-server shape
