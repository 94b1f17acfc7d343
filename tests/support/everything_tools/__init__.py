"""What the official conformance suite's server scenarios call (`@modelcontextprotocol/conformance`), written only
with the project's public API (`from app import ...`) and the SDK's own types and `Context`, as a tool author would."""
