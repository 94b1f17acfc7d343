"""The finance server's tools (tests: several servers in one app)."""

from app import completion, prompt, resource, tool


@tool(scopes=["notes.read"])
def finance_lookup(account: str = "") -> str:
    """Look an account up in finance."""
    return f"finance:{account}"


@resource("notes://recent", scopes=["notes.read"], mime_type="text/plain")
def finance_notes() -> str:
    """Finance's recent notes."""
    return "finance notes"


@prompt(scopes=["notes.read"])
def finance_prompt(topic: str) -> str:
    """Ask about a finance topic."""
    return f"finance prompt about {topic}"


@completion("finance_prompt")
def finance_topics(argument: str, value: str, context: dict[str, str]) -> list[str]:
    """Finance topics."""
    return [t for t in ("budget", "invoices") if t.startswith(value)]
