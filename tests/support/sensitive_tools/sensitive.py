"""Tools behind a Conditional Access authentication context, and tools with each agent policy; each records its run."""

from typing import Any

from app import Caller, prompt, resource, tool
from tests.support import probe


@tool(scopes=["payments.approve"], auth_context="c1")
def approve_payment(payment: str = "") -> str:
    """Approve a payment: needs payments.approve and the c1 authentication context (MFA, say)."""
    probe.calls.append(f"approve:{payment}")
    return "approved"


@tool(scopes=["mcp.read"], auth_context="c42")
def export_ledger() -> str:
    """Export the ledger: needs the c42 authentication context (its claims challenge is padded base64)."""
    probe.calls.append("export")
    return "exported"


@resource("sensitive://ledger", scopes=["mcp.read"], mime_type="text/plain", auth_context="c2")
def ledger() -> str:
    """The ledger: needs the c2 authentication context."""
    probe.calls.append("ledger")
    return "ledger"


@prompt(scopes=["mcp.read"], auth_context="c1")
def audit_prompt() -> str:
    """A prompt behind the c1 authentication context."""
    probe.calls.append("audit_prompt")
    return "Audit the ledger."


@tool(scopes=["mcp.read"], roles=["Jobs.Run"], agents="allow")
def open_to_agents() -> str:
    """Any agent may call this."""
    probe.calls.append("open")
    return "open"


@tool(scopes=["mcp.read"], roles=["Jobs.Run"], agents="deny")
def no_agents() -> str:
    """No agent may call this."""
    probe.calls.append("no_agents")
    return "people and apps only"


@tool(scopes=["mcp.read"], roles=["Jobs.Run"], agents="delegated-only")
def for_users_agents() -> str:
    """Only an agent acting for a signed-in user may call this."""
    probe.calls.append("delegated")
    return "on behalf of"


@tool(scopes=["mcp.read"], roles=["Jobs.Run"])
def server_default() -> str:
    """Follows MCP__AGENTS."""
    probe.calls.append("default")
    return "default"


@tool(scopes=["mcp.read"], roles=["Jobs.Run"], agents="allow")
def who(caller: Caller) -> dict[str, Any]:
    """The caller as tools see it, with its rate-limit key."""
    return {**caller.public_view(), "key": caller.key}
