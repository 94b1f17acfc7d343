"""Calls a downstream API as the signed-in user, the safe way: an on-behalf-of token, never the caller's token."""

from typing import Any

import httpx2
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import ToolError, downstream_token, tool


class ProfileApi(BaseSettings):
    """Where the downstream API lives and which scopes to request for it (env `PROFILE_API__…`)."""

    model_config = SettingsConfigDict(env_prefix="PROFILE_API__")
    base_url: str = "https://graph.microsoft.com/v1.0"
    scopes: list[str] = ["https://graph.microsoft.com/User.Read"]


@tool(scopes=["profile.read"])
async def my_profile() -> dict[str, Any]:
    """The caller's directory profile (display name, mail, job title) from Microsoft Graph."""
    api = ProfileApi()
    # The scopes come from settings at call time, so not a `Downstream(scopes=[...])` parameter: downstream_token().
    token = await downstream_token(api.scopes)  # exchanged via MSAL on-behalf-of; cached by MSAL
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(f"{api.base_url}/me", headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise ToolError(f"the profile service answered {response.status_code}")
    body = response.json()
    return {key: body.get(key) for key in ("displayName", "mail", "jobTitle")}
