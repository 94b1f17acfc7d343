"""The MCP extensions this server advertises (SEP-2133 `capabilities.extensions`), in both protocol eras.

The SDK's `Extension` mechanism (`MCPServer(extensions=[...])`) advertises them in 2026-07-28 `server/discover`;
its 2025-11-25 `initialize` result follows that revision's schema, which has no `extensions`, so the SDK leaves
them out there. SEP-2133 negotiates extensions in `initialize` for handshake-era versions too (its examples use
2025-06-18), so `in_initialize` adds the era-independent ones to that result. Clients that do not know the
field ignore it, as JSON clients ignore any unknown member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.context import HandlerResult
from mcp.server.extension import Extension

from app.catalog.registry import Catalog
from app.tasks.parts import Tasks

CLIENT_CREDENTIALS = "io.modelcontextprotocol/oauth-client-credentials"


class ClientCredentials(Extension):
    """The OAuth client-credentials extension (modelcontextprotocol/ext-auth, SEP-1046), with no settings: this server
    admits app-only callers (machine to machine, no user). Advertising it adds nothing to the request path."""

    identifier = CLIENT_CREDENTIALS


# Extensions whose meaning does not depend on the protocol era (Tasks' methods exist at 2026-07-28 only).
_ANY_ERA = frozenset({CLIENT_CREDENTIALS})


def advertised_extensions(catalog: Catalog, tasks: Tasks | None, local: bool = False) -> list[Extension]:
    """What this server advertises: Tasks when a tool may run as one; client credentials over HTTP when some tool,
    resource or prompt admits app-only callers (declares roles), and only then (`local`: stdio has no OAuth)."""
    found: list[Extension] = [tasks.extension] if tasks is not None else []
    if not local and any(spec.requirement.roles for spec in catalog.specs):
        found.append(ClientCredentials())
    return found


def handshake_extensions(extensions: Sequence[Extension]) -> dict[str, dict[str, Any]]:
    """Those of `extensions` a 2025-11-25 `initialize` result names too (identifier -> settings)."""
    return {e.identifier: e.settings() for e in extensions if e.identifier in _ANY_ERA}


def in_initialize(result: HandlerResult, advertised: Mapping[str, dict[str, Any]]) -> HandlerResult:
    """`result`, a handshake-era `initialize` result in wire form (a dict the middleware owns), naming `advertised`
    under `capabilities.extensions` besides whatever the SDK put there."""
    capabilities = result.get("capabilities") if isinstance(result, dict) else None
    if advertised and isinstance(result, dict) and isinstance(capabilities, Mapping):
        present = capabilities.get("extensions")
        merged = {**advertised, **(present if isinstance(present, Mapping) else {})}
        result["capabilities"] = {**capabilities, "extensions": merged}
    return result
