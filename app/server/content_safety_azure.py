"""Azure AI Content Safety as the content-safety check (optional extra: `uv sync --extra content-safety`)."""

from __future__ import annotations

import asyncio
from typing import Any

from azure.ai.contentsafety import ContentSafetyClient
from azure.ai.contentsafety.models import AnalyzeTextOptions
from azure.core.credentials import AzureKeyCredential

from app.server.content_safety import SafetyVerdict

MAX_TEXT_CHARS = 10_000  # the service's limit per text:analyze request


class AzureContentSafety:
    """Withholds text whose harm-category severity reaches the threshold; longer text is checked in chunks.

    The SDK's sync client runs in a worker thread: its async client would need aiohttp, a second HTTP stack.
    """

    def __init__(self, client: ContentSafetyClient, threshold: int, timeout: float, credential: Any = None) -> None:
        self.client = client
        self.threshold = threshold
        self.timeout = timeout
        self._credential = credential  # closed with the client when it holds connections (Entra ID credential)

    @classmethod
    def create(cls, endpoint: str, key: str | None, threshold: int, timeout: float) -> AzureContentSafety:
        """CONTENT_SAFETY__ENDPOINT with its key, or (no key) Entra ID through DefaultAzureCredential."""
        credential: Any
        if key:
            credential = AzureKeyCredential(key)
        else:
            from azure.identity import DefaultAzureCredential  # managed identity in Azure, az login locally

            credential = DefaultAzureCredential()
        client = ContentSafetyClient(endpoint, credential)
        return cls(client, threshold, timeout, credential)

    async def check(self, text: str, *, source: str) -> SafetyVerdict:
        chunks = [text[i : i + MAX_TEXT_CHARS] for i in range(0, len(text), MAX_TEXT_CHARS)] or [""]
        async with asyncio.timeout(self.timeout):
            results = await asyncio.gather(*(asyncio.to_thread(self._analyze, chunk) for chunk in chunks))
        flagged = sorted(
            {
                str(item.category)
                for result in results
                for item in result.categories_analysis
                if (item.severity or 0) >= self.threshold
            }
        )
        return SafetyVerdict(not flagged, f"flagged: {', '.join(flagged)}" if flagged else "")

    def _analyze(self, text: str) -> Any:
        options = AnalyzeTextOptions(text=text)
        return self.client.analyze_text(options, connection_timeout=self.timeout, read_timeout=self.timeout)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.client.close)
        if (close := getattr(self._credential, "close", None)) is not None:
            await asyncio.to_thread(close)
