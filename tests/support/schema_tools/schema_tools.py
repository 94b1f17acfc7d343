"""Tools with hand-written JSON Schemas, and a notes.read tool, prompt and resources: for schema and scope tests."""

from typing import Any

from app import prompt, resource, tool

# The tool the conformance scenario `json-schema-2020-12` expects, schema exactly as the scenario gives it.
CONFORMANCE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}

ORDER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "line": {
            "type": "object",
            "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"}, "qty": {"type": "integer"}},
            "required": ["sku", "qty"],
            "additionalProperties": False,
        }
    },
    "properties": {
        "customer": {"type": "string", "minLength": 1, "maxLength": 40},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "minItems": 1},
        "rush": {"type": "boolean"},
    },
    "required": ["customer", "lines"],
    "additionalProperties": False,
}


@tool(scopes=["mcp.read"], input_schema=CONFORMANCE_SCHEMA, description="Tool with JSON Schema 2020-12 features")
def json_schema_2020_12_tool(name: str | None = None, address: dict[str, Any] | None = None) -> str:
    """Echo what it was given, as the conformance scenario's tool does."""
    city = (address or {}).get("city", "nowhere")
    return f"{name or 'nobody'} lives in {city}"


@tool(scopes=["mcp.read"], input_schema=ORDER_SCHEMA)
def place_order(customer: str, lines: list[dict[str, Any]], rush: bool = False) -> dict[str, Any]:
    """Place an order: arguments arrive as plain JSON values, already checked against ORDER_SCHEMA."""
    return {"customer": customer, "items": sum(line["qty"] for line in lines), "rush": rush}


@tool(scopes=["notes.read"])
def read_notes() -> str:
    """Needs notes.read."""
    return "the notes"


@prompt(scopes=["notes.read"])
def notes_prompt() -> str:
    """A prompt for notes.read callers."""
    return "summarise the notes"


@resource("notes://all", scopes=["notes.read"], mime_type="text/plain")
def all_notes() -> str:
    """Every note."""
    return "all the notes"


@resource("notes://items/{item}", scopes=["notes.read"], mime_type="text/plain")
def one_note(item: str) -> str:
    """One note."""
    return f"note {item}"
