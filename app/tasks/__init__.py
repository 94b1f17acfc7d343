"""Long-running tools: the MCP Tasks extension (`io.modelcontextprotocol/tasks`), bound to the caller, durable in
memory or Redis. See docs/tasks.md."""
