"""Entra Agent ID callers: classified (user, app, agent; an agent acting for a user or on its own), keyed, audited,
traced, and admitted or refused per target by `agents="allow" | "deny" | "delegated-only"` (default MCP__AGENTS).

Agent tokens follow Microsoft's documented claim sets: "Token claims reference for agent IDs",
https://learn.microsoft.com/entra/agent-id/identity-platform/agent-token-claims (tests/support/agents.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app import requires, tool
from tests.support import agents, probe
from tests.support.agents import AGENT_APP, HUMAN, PARENT_APP, PLAIN_APP
from tests.support.calls import call, mcp_client, rpc
from tests.support.entra import EntraStandIn
from tests.support.otel import OtelMemory
from tests.support.servers import ServerThread
from tests.support.values import JWT_SHAPED, SUPPORT, TENANT

SENSITIVE_TOOLS = SUPPORT / "sensitive_tools"
SENSITIVE_ROUTES = SUPPORT / "sensitive_routes"
KINDS = ["user", "app", "autonomous_agent", "agent_user", "delegated_agent"]


def mint(entra: EntraStandIn, kind: str) -> str:
    """A token of each kind of caller, each granted what the test tools need (mcp.read or the Jobs.Run role)."""
    if kind == "user":
        return agents.plain_user(entra, "mcp.read")
    if kind == "app":
        return agents.plain_app(entra, ["Jobs.Run"])
    if kind == "autonomous_agent":
        return agents.autonomous_agent(entra, ["Jobs.Run"])
    if kind == "agent_user":
        return agents.agent_as_agent_user(entra, "mcp.read")
    return agents.delegated_agent(entra, "mcp.read")


OK, NO = 200, 403
# tool -> what each kind gets, under the shipped MCP__AGENTS (delegated-only)
EXPECTED = {
    "open_to_agents": dict.fromkeys(KINDS, OK),
    "no_agents": {"user": OK, "app": OK, "autonomous_agent": NO, "agent_user": NO, "delegated_agent": NO},
    "for_users_agents": {"user": OK, "app": OK, "autonomous_agent": NO, "agent_user": NO, "delegated_agent": OK},
    "server_default": {"user": OK, "app": OK, "autonomous_agent": NO, "agent_user": NO, "delegated_agent": OK},
}


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def server(serve: Callable[..., ServerThread], audit: Path) -> ServerThread:
    return serve(tools={"dir": SENSITIVE_TOOLS}, routes={"dir": SENSITIVE_ROUTES}, audit={"sink": f"file:{audit}"})


async def _call(server: ServerThread, bearer: str, name: str) -> httpx2.Response:
    async with httpx2.AsyncClient(base_url=server.url, timeout=20) as http:
        return await call(http, bearer, name)


@pytest.mark.parametrize("kind", KINDS)
async def test_each_kind_of_caller_is_admitted_or_refused_per_policy(
    server: ServerThread, entra: EntraStandIn, kind: str
) -> None:
    bearer = mint(entra, kind)
    for name, outcome in EXPECTED.items():
        before = list(probe.calls)
        response = await _call(server, bearer, name)
        assert response.status_code == outcome[kind], (name, kind, response.text)
        assert (probe.calls != before) is (outcome[kind] == OK)  # a refused agent never reaches the tool


@pytest.mark.parametrize(
    ("setting", "autonomous", "delegated"), [("allow", OK, OK), ("deny", NO, NO), ("delegated-only", NO, OK)]
)
async def test_mcp_agents_sets_the_default_and_a_tools_own_policy_wins(
    serve: Callable[..., ServerThread], entra: EntraStandIn, setting: str, autonomous: int, delegated: int
) -> None:
    server = serve(tools={"dir": SENSITIVE_TOOLS}, mcp={"agents": setting})
    for kind, status in (("autonomous_agent", autonomous), ("delegated_agent", delegated), ("user", OK), ("app", OK)):
        assert (await _call(server, mint(entra, kind), "server_default")).status_code == status, (setting, kind)
    assert (await _call(server, mint(entra, "autonomous_agent"), "open_to_agents")).status_code == OK
    assert (await _call(server, mint(entra, "delegated_agent"), "no_agents")).status_code == NO


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_the_403_says_why_and_is_no_step_up(
    serve: Callable[..., ServerThread], entra: EntraStandIn, era: str
) -> None:
    server = serve(tools={"dir": SENSITIVE_TOOLS}, mcp={"stateless": True})
    for kind, name, why in (
        ("autonomous_agent", "for_users_agents", "only an agent acting for a signed-in user may use this"),
        ("delegated_agent", "no_agents", "agent identities may not use this (agents policy: deny)"),
    ):
        bearer = mint(entra, kind)
        async with httpx2.AsyncClient(base_url=server.url, timeout=20) as http:
            if era == "modern":
                response = await call(http, bearer, name)
            else:
                headers = {"MCP-Protocol-Version": "2025-11-25", "Accept": "application/json, text/event-stream"}
                body = rpc("tools/call", {"name": name, "arguments": {}})
                response = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {bearer}"})
        assert response.status_code == 403
        assert why in response.json()["error_description"] and response.json()["error"] == "access_denied"
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="access_denied"') and why in challenge
        assert "insufficient_scope" not in challenge and "scope=" not in challenge  # nothing to step up to


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("user", {"kind": "user", "key": f"{TENANT}:{HUMAN}"}),
        ("app", {"kind": "app", "key": f"{TENANT}:{PLAIN_APP}"}),
        ("autonomous_agent", {"kind": "agent", "agent_parent": PARENT_APP, "on_behalf_of": None}),
        ("agent_user", {"kind": "agent", "agent_parent": PARENT_APP, "on_behalf_of": None}),
        ("delegated_agent", {"kind": "agent", "agent_parent": PARENT_APP, "on_behalf_of": HUMAN}),
    ],
)
async def test_each_kind_is_classified_and_keyed(
    server: ServerThread, entra: EntraStandIn, kind: str, expected: dict[str, Any]
) -> None:
    async with mcp_client(server.url, mint(entra, kind)) as client:
        seen = (await client.call_tool("who", {})).structured_content or {}
    assert {k: seen.get(k) for k in expected} == expected
    if kind in ("autonomous_agent", "agent_user"):
        assert seen["key"] == f"{TENANT}:{AGENT_APP}"  # an agent on its own: its own app id, one budget
    if kind == "delegated_agent":
        assert seen["key"] == f"{TENANT}:{HUMAN}:{AGENT_APP}" and seen["oid"] == HUMAN
    if seen["kind"] != "agent":
        assert "agent_parent" not in seen and "on_behalf_of" not in seen


async def test_either_documented_marker_alone_makes_an_agent(server: ServerThread, entra: EntraStandIn) -> None:
    """The actor facet 11 (claims reference) or `xms_par_app_azp` (Microsoft's downstream-API validation how-to)."""
    for bearer in (
        agents.autonomous_agent(entra, ["Jobs.Run"], xms_par_app_azp=None, xms_sub_fct=None),
        agents.autonomous_agent(entra, ["Jobs.Run"], xms_act_fct=None, xms_sub_fct=None),
    ):
        assert (await _call(server, bearer, "for_users_agents")).status_code == NO
        assert (await _call(server, bearer, "open_to_agents")).status_code == OK


async def test_a_delegated_agent_does_not_spend_its_users_rate_limit(
    serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    server = serve(tools={"dir": SENSITIVE_TOOLS}, rate_limit={"default": "2/minute"})
    user, agent = mint(entra, "user"), mint(entra, "delegated_agent")
    assert [(await _call(server, user, "open_to_agents")).status_code for _ in range(3)] == [OK, OK, 429]
    assert (await _call(server, agent, "open_to_agents")).status_code == OK  # its own bucket: (user, agent)


async def test_lists_hide_what_the_policy_refuses(server: ServerThread, entra: EntraStandIn) -> None:
    async with mcp_client(server.url, mint(entra, "autonomous_agent")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names == {"open_to_agents", "who"}
    async with mcp_client(server.url, mint(entra, "delegated_agent")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"open_to_agents", "for_users_agents", "server_default"} <= names and "no_agents" not in names


async def test_routes_follow_the_policy(server: ServerThread, entra: EntraStandIn) -> None:
    async with httpx2.AsyncClient(base_url=server.url, timeout=20) as http:
        for kind, status in (("delegated_agent", NO), ("autonomous_agent", NO), ("user", OK), ("app", OK)):
            response = await http.get("/api/agents-denied", headers={"Authorization": f"Bearer {mint(entra, kind)}"})
            assert response.status_code == status, (kind, response.text)


async def test_audit_records_name_the_agent_its_parent_and_its_user(
    server: ServerThread, entra: EntraStandIn, audit: Path
) -> None:
    assert (await _call(server, mint(entra, "delegated_agent"), "open_to_agents")).status_code == OK
    assert (await _call(server, mint(entra, "autonomous_agent"), "for_users_agents")).status_code == NO
    text = audit.read_text()
    called, denied = [json.loads(line) for line in text.splitlines()]
    assert called["event"] == "tool_call" and called["principal"] == {
        "oid": HUMAN,
        "tid": TENANT,
        "azp": AGENT_APP,
        "kind": "agent",
        "agent_parent": PARENT_APP,
        "on_behalf_of": HUMAN,
    }
    assert denied["event"] == "authz_denied" and denied["target"] == "for_users_agents"
    assert denied["principal"]["kind"] == "agent" and denied["principal"]["on_behalf_of"] is None
    assert "delegated-only" in denied["reason"]
    assert not JWT_SHAPED.search(text)


async def test_spans_name_the_kind_the_agent_and_its_parent(
    otel: OtelMemory, serve: Callable[..., ServerThread], entra: EntraStandIn
) -> None:
    server = serve(tools={"dir": SENSITIVE_TOOLS})
    bearer = mint(entra, "delegated_agent")
    assert (await _call(server, bearer, "open_to_agents")).status_code == OK
    (span,) = [s for s in otel.spans.get_finished_spans() if s.name == "tools/call open_to_agents"]
    attrs = dict(span.attributes or {})
    assert attrs["auth.principal.kind"] == "agent" and attrs["auth.agent.id"] == AGENT_APP
    assert attrs["auth.agent.parent_app"] == PARENT_APP and attrs["auth.agent.delegated"] is True
    assert bearer not in json.dumps(attrs, default=str)


@pytest.mark.parametrize("bad", ["allowed", "Deny", "delegated", "", True])
def test_an_unknown_policy_is_refused_at_decoration(bad: Any) -> None:
    with pytest.raises(TypeError, match="agents must be one of"):
        tool(scopes=["x"], agents=bad)
    with pytest.raises(TypeError, match="agents must be one of"):
        requires(scopes=["x"], agents=bad)
