"""FastAPI routes beside MCP: discovered from `routes/`, each guarded by the auth dependencies or declared public."""
