"""Per-caller limits are per server, across replicas: two app processes, each serving two MCP servers, share one
real redis-server. One caller exhausting its budget at the first server, through both replicas, leaves the same
caller's budget at the second server whole, on both replicas."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import httpx2
import pytest

from tests.support.calls import modern_call
from tests.support.entra import EntraStandIn
from tests.support.redis import RedisServer
from tests.support.replicas import Replica, replicas_ready
from tests.support.values import CLIENT_ID, SUPPORT, TENANT

if shutil.which("redis-server") is None:
    if os.environ.get("CI"):  # CI installs it (.ci/test-packages): missing there is a failure, not a skip
        raise RuntimeError("redis-server is not installed")
    pytest.skip("redis-server is not installed (make test installs it when run as root)", allow_module_level=True)

pytestmark = pytest.mark.slow

FINANCE_ID = "f1000000-0000-4000-8000-00000000f111"
BUDGET = 6  # RATE_LIMIT__DEFAULT per caller, per server


@pytest.fixture(scope="module")
def replicas(entra: EntraStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    redis = RedisServer().start()
    try:
        with replicas_ready(
            entra,
            redis,
            tmp_path_factory.mktemp("server-replicas"),
            TOOLS__DIR=str(SUPPORT / "two_servers" / "hr"),
            SERVERS__FINANCE__PATH="/finance/mcp",
            SERVERS__FINANCE__CLIENT_ID=FINANCE_ID,
            SERVERS__FINANCE__TOOLS_DIR=str(SUPPORT / "two_servers" / "finance" / "tools"),
            RATE_LIMIT__DEFAULT=f"{BUDGET}/minute",
        ) as started:
            yield started
    finally:
        redis.close()


async def calls(replicas: list[Replica], path: str, token: str, tool: str, count: int) -> list[int]:
    """`count` calls one after the other, alternating between the replicas; their status codes."""
    headers, body = modern_call(tool)
    statuses = []
    async with httpx2.AsyncClient(timeout=30) as http:
        for i in range(count):
            url = f"{replicas[i % 2].url}{path}"
            answer = await http.post(url, json=body, headers={**headers, "Authorization": f"Bearer {token}"})
            statuses.append(answer.status_code)
    return statuses


async def test_exhausting_one_servers_budget_leaves_the_callers_budget_at_the_other_intact(
    replicas: list[Replica], entra: EntraStandIn
) -> None:
    oid = "aaaaaaaa-0000-4000-8000-0000000005e1"
    at_hr = entra.token(tenant=TENANT, audience=CLIENT_ID, scopes="notes.read", oid=oid)
    at_finance = entra.token(tenant=TENANT, audience=FINANCE_ID, scopes="notes.read", oid=oid)
    # The budget is shared by the replicas (Redis): the seventh call, whichever replica takes it, is refused.
    assert await calls(replicas, "/mcp", at_hr, "hr_lookup", BUDGET + 2) == [200] * BUDGET + [429, 429]
    # The same caller (same oid, same tenant) at the other server: its whole budget, on both replicas.
    assert await calls(replicas, "/finance/mcp", at_finance, "finance_lookup", BUDGET) == [200] * BUDGET
    assert await calls(replicas, "/finance/mcp", at_finance, "finance_lookup", 1) == [429]
    # And the first server still refuses: nothing the second spent was given back to it, or taken from it.
    assert await calls(replicas, "/mcp", at_hr, "hr_lookup", 1) == [429]
