"""The MCP server: building the SDK's `MCPServer` from the catalog, filling SDK gaps, the tool thread pool, tool bounds
and content safety.
"""
