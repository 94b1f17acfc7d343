"""Your MCP tools, resources and prompts. Every module here (subpackages too) is discovered at startup."""
