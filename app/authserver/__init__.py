"""The authorization-server facade (AUTH_SERVER__ENABLED): MCP clients that cannot be pre-registered in Entra (DCR,
Client ID Metadata Documents) sign in through this server, which asks the user's consent per client and signs them
in at Entra as the confidential client of the server asked for (each MCP server of the app is its own app
registration; RFC 8707 `resource` says which). See docs/auth-server.md."""
