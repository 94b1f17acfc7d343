"""The tool authors' kit itself: the generated refusals stop callers before any tool runs, on any tools folder."""

from __future__ import annotations

import pytest

from app.catalog.registry import Requirement, Spec
from app.toolkit.testing import Denial, denials, discovered_tools, serve_tools
from tests.support import probe
from tests.support.values import TEST_TOOLS


def _spec(scopes: tuple[str, ...] = (), roles: tuple[str, ...] = (), public: bool = False) -> Spec:
    return Spec("tool", lambda: None, "t", Requirement(frozenset(scopes), frozenset(roles), public))


def test_denials_leave_out_each_declared_grant_in_turn() -> None:
    assert denials(_spec(scopes=("a", "b"), roles=("R",))) == [
        Denial("t", "none", (), 401),
        Denial("t", "user", ("b",), 403),
        Denial("t", "user", ("a",), 403),
        Denial("t", "app", (), 403),
    ]
    # a roles-only tool refuses users whatever they hold; a scopes-only tool refuses apps
    assert Denial("t", "user", ("R",), 403) in denials(_spec(roles=("R",)))
    assert Denial("t", "app", ("a",), 403) in denials(_spec(scopes=("a",)))
    assert denials(_spec(public=True)) == [Denial("t", "none", (), 401)]


@pytest.mark.slow
async def test_every_generated_refusal_happens_before_the_tool_runs() -> None:
    specs = discovered_tools(TEST_TOOLS)
    cases = [denial for spec in specs for denial in denials(spec)]
    assert {"probe_read", "probe_write", "probe_app_job"} <= {spec.name for spec in specs}
    before = list(probe.calls)
    with serve_tools(TEST_TOOLS) as server:
        for case in cases:
            grants = case.grants
            token = {"none": None, "user": server.issuer.user_token(grants), "app": server.issuer.app_token(grants)}
            response = await server.post("tools/call", {"name": case.tool, "arguments": {}}, token[case.kind])
            assert response.status_code == case.expect, (case, response.text)
        async with server.as_user(scopes=["mcp.read"]) as client:
            assert (await client.call_tool("probe_read", {"note": "kit"})).is_error is False
    assert probe.calls == [*before, "read:kit"]  # only the granted call ran
