"""A task that calls a downstream API as the user (on-behalf-of), after the request that created it has ended."""

import asyncio
from typing import Any

import httpx2
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import ToolError, downstream_token, progress, tool


class ProfileApi(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROFILE_API__")
    base_url: str = "https://graph.microsoft.com/v1.0"
    scopes: list[str] = ["https://graph.microsoft.com/User.Read"]


@tool(scopes=["profile.read"], task="optional")
async def profile_later() -> dict[str, Any]:
    """Waits, then reads the caller's profile with an on-behalf-of token."""
    await progress.report("waiting")
    await asyncio.sleep(0.3)
    api = ProfileApi()
    token = await downstream_token(api.scopes)
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(f"{api.base_url}/me", headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise ToolError(f"the profile service answered {response.status_code}")
    body = response.json()
    return {key: body.get(key) for key in ("displayName", "mail")}
