"""Conditional Access authentication context per tool, resource, prompt and route: a token whose `acrs` lacks the
declared id gets 401 with Entra's claims challenge before dispatch (decoded here), one that carries it passes, and
lists still show what it guards. Real uvicorn, raw HTTP in both protocol eras, the SDK client for the lists."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from app import prompt, requires, resource, tool
from tests.support import probe
from tests.support.calls import MODERN_HEADERS, mcp_client, rpc
from tests.support.servers import ServerThread
from tests.support.values import SUPPORT

SENSITIVE_TOOLS = SUPPORT / "sensitive_tools"
SENSITIVE_ROUTES = SUPPORT / "sensitive_routes"
ERAS = ["legacy", "modern"]
LEGACY = {"MCP-Protocol-Version": "2025-11-25", "Accept": "application/json, text/event-stream"}
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
NAMES = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


@pytest.fixture
def audit(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def server(serve: Callable[..., ServerThread], audit: Path) -> ServerThread:
    # Stateless: single raw handshake-era requests without a session.
    return serve(
        tools={"dir": SENSITIVE_TOOLS},
        routes={"dir": SENSITIVE_ROUTES},
        mcp={"stateless": True},
        audit={"sink": f"file:{audit}"},
    )


async def send(server: ServerThread, bearer: str, era: str, method: str, params: dict[str, Any]) -> httpx2.Response:
    """One raw JSON-RPC request, as a client of that era sends it."""
    if era == "legacy":
        headers, body = dict(LEGACY), rpc(method, params)
    else:
        headers = {**MODERN_HEADERS, "Mcp-Method": method, "Mcp-Name": str(params[NAMES[method]])}
        body = rpc(method, {**params, "_meta": META})
    async with httpx2.AsyncClient(base_url=server.url, timeout=20) as http:
        return await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {bearer}"})


def claims_of(challenge: str) -> dict[str, Any]:
    """The JSON a claims challenge asks for (the header's `claims`, standard base64 with its padding)."""
    found = re.search(r'claims="([^"]*)"', challenge)
    assert found is not None, challenge
    decoded: dict[str, Any] = json.loads(base64.b64decode(found.group(1), validate=True))
    return decoded


def expected_header(server: ServerThread, context: str) -> str:
    wanted = json.dumps({"access_token": {"acrs": {"essential": True, "value": context}}}, separators=(",", ":"))
    claims = base64.b64encode(wanted.encode()).decode()
    metadata = f"{server.url}/.well-known/oauth-protected-resource/mcp"
    return f'Bearer error="insufficient_claims", claims="{claims}", resource_metadata="{metadata}"'


@pytest.mark.parametrize("era", ERAS)
async def test_a_token_without_the_context_gets_entras_claims_challenge_and_the_tool_does_not_run(
    server: ServerThread, token: Callable[..., str], era: str
) -> None:
    before = list(probe.calls)
    for acrs in (None, ["c2", "c3"], "c1", {"c1": True}):  # absent, other contexts, and not a JSON array
        extra = {"acrs": acrs} if acrs is not None else {}
        refused = await send(server, token("payments.approve", **extra), era, "tools/call", {"name": "approve_payment"})
        assert refused.status_code == 401, (acrs, refused.text)
        assert refused.headers["www-authenticate"] == expected_header(server, "c1")
        assert claims_of(refused.headers["www-authenticate"]) == {
            "access_token": {"acrs": {"essential": True, "value": "c1"}}
        }
        assert refused.json()["error"] == "insufficient_claims"
    assert probe.calls == before  # refused before dispatch

    passed = await send(
        server, token("payments.approve", acrs=["c7", "c1"]), era, "tools/call", {"name": "approve_payment"}
    )
    assert passed.status_code == 200, passed.text
    assert probe.calls == [*before, "approve:"]


async def test_a_two_digit_context_is_asked_for_in_padded_standard_base64(
    server: ServerThread, token: Callable[..., str]
) -> None:
    refused = await send(server, token("mcp.read"), "modern", "tools/call", {"name": "export_ledger"})
    challenge = refused.headers["www-authenticate"]
    assert refused.status_code == 401 and challenge == expected_header(server, "c42")
    claims = re.search(r'claims="([^"]*)"', challenge)
    assert claims is not None and claims.group(1).endswith("==")  # 58 bytes of JSON: padded, as Microsoft encodes it
    assert claims_of(challenge)["access_token"]["acrs"]["value"] == "c42"
    allowed = await send(server, token("mcp.read", acrs=["c42"]), "modern", "tools/call", {"name": "export_ledger"})
    assert allowed.status_code == 200


@pytest.mark.parametrize("era", ERAS)
async def test_resources_and_prompts_behind_a_context_are_challenged_too(
    server: ServerThread, token: Callable[..., str], era: str
) -> None:
    for method, params, context in (
        ("resources/read", {"uri": "sensitive://ledger"}, "c2"),
        ("prompts/get", {"name": "audit_prompt"}, "c1"),
    ):
        refused = await send(server, token("mcp.read"), era, method, params)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == expected_header(server, context)
        allowed = await send(server, token("mcp.read", acrs=[context]), era, method, params)
        assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_lists_still_show_what_a_context_guards(
    server: ServerThread, token: Callable[..., str], mode: str
) -> None:
    async with mcp_client(server.url, token("payments.approve mcp.read"), mode=mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert {"approve_payment", "export_ledger"} <= tools
    assert "sensitive://ledger" in resources and "audit_prompt" in prompts


async def test_a_missing_scope_is_stepped_up_before_the_context_is_asked_for(
    server: ServerThread, token: Callable[..., str]
) -> None:
    response = await send(server, token("mcp.read"), "modern", "tools/call", {"name": "approve_payment"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert (
        "payments.approve" in response.headers["www-authenticate"]
        and "claims=" not in response.headers["www-authenticate"]
    )


async def test_a_route_behind_a_context_is_challenged_the_same_way(
    server: ServerThread, token: Callable[..., str]
) -> None:
    async with httpx2.AsyncClient(base_url=server.url, timeout=20) as http:
        refused = await http.post(
            "/api/payments/approve", headers={"Authorization": f"Bearer {token('payments.approve')}"}
        )
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == expected_header(server, "c1")
        allowed = await http.post(
            "/api/payments/approve", headers={"Authorization": f"Bearer {token('payments.approve', acrs=['c1'])}"}
        )
        assert allowed.status_code == 200 and allowed.json() == {"status": "approved"}


async def test_the_refusal_is_audited_like_other_refusals(
    server: ServerThread, token: Callable[..., str], audit: Path
) -> None:
    await send(server, token("payments.approve"), "modern", "tools/call", {"name": "approve_payment"})
    async with httpx2.AsyncClient(base_url=server.url, timeout=20) as http:
        await http.post("/api/payments/approve", headers={"Authorization": f"Bearer {token('payments.approve')}"})
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    denied = [r for r in records if r["outcome"] == "denied"]
    assert [(r["event"], r.get("target") or r.get("route")) for r in denied] == [
        ("authz_denied", "approve_payment"),
        ("route_access", "/api/payments/approve"),
    ]
    assert all("authentication context c1" in r["reason"] for r in denied)
    assert all(r["principal"]["kind"] == "user" for r in denied)


@pytest.mark.parametrize("bad", ["c0", "c100", "C1", "c01", "c1 ", "p1", "", 1, ["c1"]])
def test_an_authentication_context_other_than_c1_to_c99_is_refused_at_decoration(bad: Any) -> None:
    for declare in (
        lambda: tool(scopes=["x"], auth_context=bad),
        lambda: resource("x://y", scopes=["x"], auth_context=bad),
        lambda: prompt(scopes=["x"], auth_context=bad),
        lambda: requires(scopes=["x"], auth_context=bad),
    ):
        with pytest.raises(TypeError, match=r"c1 \.\. c99"):
            declare()


def test_c1_to_c99_are_accepted() -> None:
    for good in ("c1", "c9", "c10", "c99"):
        tool(scopes=["x"], auth_context=good)
        requires(scopes=["x"], auth_context=good)
