"""The HR server's tools (tests: several servers in one app)."""

from app import completion, prompt, resource, tool


@tool(scopes=["notes.read"])
def hr_lookup(name: str = "") -> str:
    """Look someone up in HR."""
    return f"hr:{name}"


@tool(scopes=["hr.admin"])
def hr_admin() -> str:
    """Only HR admins."""
    return "hr admin ok"


@resource("notes://recent", scopes=["notes.read"], mime_type="text/plain")
def hr_notes() -> str:
    """HR's recent notes."""
    return "hr notes"


@prompt(scopes=["notes.read"])
def hr_prompt(topic: str) -> str:
    """Ask about an HR topic."""
    return f"hr prompt about {topic}"


@completion("hr_prompt")
def hr_topics(argument: str, value: str, context: dict[str, str]) -> list[str]:
    """HR topics."""
    return [t for t in ("leave", "payroll") if t.startswith(value)]
