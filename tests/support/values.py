"""The test suite's fixed values (the stand-in tenant and this server's client id, the repo's paths) and the
production settings the app is served with against the Entra stand-in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.settings import Settings
from tests.support.entra import EntraStandIn

TENANT = "72f988bf-0000-4000-8000-000000000001"
OTHER_TENANT = "0e3e2e88-0000-4000-8000-000000000002"
CLIENT_ID = "5c6a6c1c-0000-4000-8000-00000000c11e"
REPO = Path(__file__).resolve().parent.parent.parent
SUPPORT = REPO / "tests" / "support"
TEST_TOOLS = SUPPORT / "tools"
READER = "mcp.read"  # the scope the test tools' read probes need
# Production with stateless HTTP needs a shared requestState key ring; a fixed test ring.
REQUEST_STATE_KEY = "test-request-state-key-0123456789abcdef"
CLIENT_SECRET = "obo-client-secret-value-123"  # a test credential for the stand-in (on-behalf-of)
JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")


def oid(n: int) -> str:
    """The `n`th caller's object id."""
    return f"bbbbbbbb-0000-4000-8000-{n:012d}"


def settings_for(entra: EntraStandIn, port: int, **overrides: Any) -> Settings:
    """Production settings against the stand-in; `overrides` are nested dicts per section."""
    values: dict[str, Any] = {
        "app_env": "production",
        "azuread": {"instance": entra.base, "tenant_id": TENANT, "client_id": CLIENT_ID},
        "mcp": {"resource_host": f"http://127.0.0.1:{port}", "request_state_keys": [REQUEST_STATE_KEY]},
        # Test tool folders have no tools.lock; tests/toolkit/test_toolslock.py covers enforcement.
        "tools": {"dir": TEST_TOOLS, "lock_mode": "warn"},
    }
    for section, value in overrides.items():
        values[section] = {**values.get(section, {}), **value} if isinstance(value, dict) else value
    return Settings(_env_file=None, **values)
