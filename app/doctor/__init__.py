"""`secure-mcp-server doctor`: checks of a configuration against reality, each a small function that takes plain
values and returns `Finding`s (app/core/findings.py), and never raises.

- `issuer`: the Entra (or dev issuer) discovery document and its signing keys.
- `registration`: the App ID URI against the resource, and the app registration read through Microsoft Graph.
- `vault`: Key Vault reachable and holding every secret the server will ask it for.
- `redis`: the shared Redis answers PING.
- `lock`: tools.lock matches the served tools.
- `metadata`: Protected Resource Metadata, the 401 challenge and the authorization servers' metadata, black-box.
- `http`: the one HTTP client (short timeouts, no credentials, redirects within one origin only).
- `report`: the guard that turns an exception into a finding, the text and JSON renderings, the exit code.

Only app/cli/doctor.py reads settings; it chooses the checks and hands them values.
"""
