"""FastAPI routes served beside MCP: each module's `router` is discovered at startup (see docs/routes.md)."""
