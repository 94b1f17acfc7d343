"""Generated: every tool in tools/ refuses callers who lack its declared scopes or roles, before it runs.

Parametrized from discovery, so a tool dropped into tools/ is covered without writing a test for it.
"""

from __future__ import annotations

import pytest

from app.catalog.registry import Spec
from app.toolkit.testing import ClientFactory, Denial, TestServer, denials, discovered_tools

TOOLS = discovered_tools()
DENIALS = [denial for spec in TOOLS for denial in denials(spec)]


@pytest.mark.parametrize("denial", DENIALS, ids=[d.id for d in DENIALS])
async def test_tool_refuses_caller_without_its_grants(mcp_server: TestServer, denial: Denial) -> None:
    issuer = mcp_server.issuer
    token = {
        "none": None,
        "user": issuer.user_token(denial.grants) if denial.kind == "user" else None,
        "app": issuer.app_token(denial.grants) if denial.kind == "app" else None,
    }[denial.kind]
    response = await mcp_server.post("tools/call", {"name": denial.tool, "arguments": {}}, token)
    # 401/403 come from the HTTP layers in front of the SDK: the request was never dispatched to the tool.
    assert response.status_code == denial.expect, response.text
    expected_error = "insufficient_scope" if denial.expect == 403 else "unauthorized"
    assert response.json()["error"] == expected_error


@pytest.mark.parametrize("spec", TOOLS, ids=[s.name for s in TOOLS])
async def test_tool_is_served_to_a_caller_with_its_grants(
    spec: Spec, as_user: ClientFactory, as_app: ClientFactory
) -> None:
    # The refusals above mean something only if the tool exists and a properly granted caller can reach it.
    req = spec.requirement
    callers = []
    if req.scopes or req.public:
        callers.append(as_user(scopes=sorted(req.scopes)))
    if req.roles or req.public:
        callers.append(as_app(roles=sorted(req.roles)))
    for caller in callers:
        async with caller as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
        assert spec.name in names
