"""The `STDIO__*` section: local mode (`python -m app stdio`), the signed-in user's MSAL tokens as the identity."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from app.settings.fields import CsvList, Section, csv_list


class StdioSettings(Section):
    """Local mode over stdio: the desktop user signs in with MSAL as a public client."""

    client_id: str | None = None
    """Application (client) id of the public client users sign in with (an app registration with "Allow public client
    flows" and the redirect URI `http://localhost`). Default: `DEV_ISSUER__CLIENT_ID` with the dev issuer, else
    `AZUREAD__CLIENT_ID`."""
    authority: str | None = None
    """MSAL authority, e.g. `https://login.microsoftonline.com/{tenant}`. Default: `AZUREAD__INSTANCE` and
    `AZUREAD__TENANT_ID` (the dev issuer's address with the dev issuer, which then needs `DEV_ISSUER__TLS=true`)."""
    scopes: CsvList | None = None
    """Scopes to sign in for, short (`mcp.read`) or full (`{app_id_uri}/mcp.read`). Default: every scope the tools
    and `MCP__REQUIRED_SCOPES` declare."""
    _split_scopes = field_validator("scopes", mode="before")(csv_list)
    sign_in: Literal["auto", "broker", "browser", "device_code"] = "auto"
    """How to sign in when the cache has no token: `auto` tries the OS broker (Windows, macOS), then the system
    browser with a loopback redirect, then device code (printed on stderr)."""
    sign_in_timeout_seconds: int = Field(default=300, ge=10, le=3600)
    """How long an interactive sign-in may take."""
    cache_path: Path | None = None
    """The MSAL token cache file. Default: `msal-token-cache.bin` in the user's data directory."""
    allow_plain_cache: bool = False
    """Development only: when no OS keyring can encrypt the token cache (a Linux box without an unlocked libsecret
    keyring), keep it as a plain file readable by the user only (0600). Refused in production."""
    data_dir: Path | None = None
    """Where local mode keeps its files (token cache, audit log). Default: the user's data directory
    (`%LOCALAPPDATA%`, `~/Library/Application Support` or `$XDG_DATA_HOME`, then `secure-mcp-server`)."""
