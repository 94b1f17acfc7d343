"""What production refuses: missing Entra settings, and values that are only safe on a developer's machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings


def refuse_insecure_production(settings: Settings) -> None:
    """Raise `ValueError` (one line, naming the setting) for the first production problem found."""
    missing = [
        env
        for env, value in (
            ("AZUREAD__TENANT_ID", settings.azuread.tenant_id),
            ("AZUREAD__CLIENT_ID", settings.azuread.client_id),
            ("MCP__RESOURCE_HOST", settings.mcp.resource_host),
        )
        if not value
    ]
    if missing:
        raise ValueError(
            f"production mode needs {', '.join(missing)}; set them (see .env.example) "
            "or set APP_ENV=development to run with the embedded dev issuer"
        )
    if settings.audit.sink == "off":
        raise ValueError("AUDIT__SINK=off is refused in production; use stdout or file:/path")
    if settings.azuread.multi_tenant and not settings.azuread.allowed_tenants:
        raise ValueError("a multi-tenant AZUREAD__TENANT_ID needs AZUREAD__ALLOWED_TENANTS in production")
    if settings.stdio.allow_plain_cache:
        raise ValueError("STDIO__ALLOW_PLAIN_CACHE is for development; production keeps the token cache encrypted")
    if settings.tools.lock_mode == "off":
        raise ValueError("TOOLS__LOCK_MODE=off is for development; production accepts enforce or warn")
    if settings.auth_server.enabled and settings.workers > 1 and settings.auth_server.state_uri is None:
        raise ValueError(
            "AUTH_SERVER__ENABLED with more than one worker needs AUTH_SERVER__STATE_URI=redis://...: codes, "
            "consents and registrations must be shared"
        )
    if settings.content_safety.provider == "azure" and not settings.content_safety.endpoint:
        raise ValueError("CONTENT_SAFETY__PROVIDER=azure needs CONTENT_SAFETY__ENDPOINT")
    if not settings.mcp.request_state_keys and (settings.mcp.stateless or settings.workers > 1):
        raise ValueError(
            "production with MCP__STATELESS=true or more than one worker needs MCP__REQUEST_STATE_KEYS "
            "(Key Vault secret mcp--request-state-keys): a shared key ring, so every replica can unseal "
            'requestState; generate a key with `python -c "import secrets; print(secrets.token_hex(32))"`'
        )
