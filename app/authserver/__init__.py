"""The authorization-server facade (AUTH_SERVER__ENABLED): MCP clients that cannot be pre-registered in Entra (DCR,
Client ID Metadata Documents) sign in through this server, which asks the user's consent per client and signs them
in at Entra as its own confidential client. See docs/auth-server.md."""
