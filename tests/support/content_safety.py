"""A local Azure AI Content Safety stand-in (text:analyze, key auth), and a custom check for the hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.server.content import SafetyVerdict
from app.settings import Settings

KEY = "local-content-safety-key"


@dataclass
class ContentSafetyStandIn:
    """Scores text like the service: severity 6 for Violence when it contains "attack", else 0."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def analyze(request: Request) -> Response:
            if request.headers.get("ocp-apim-subscription-key") != KEY:
                return JSONResponse({"error": {"code": "401", "message": "Access denied"}}, status_code=401)
            body = await request.json()
            self.requests.append({"api-version": request.query_params.get("api-version"), **body})
            violent = "attack" in body["text"].lower()
            return JSONResponse(
                {
                    "blocklistsMatch": [],
                    "categoriesAnalysis": [
                        {"category": "Hate", "severity": 0},
                        {"category": "SelfHarm", "severity": 0},
                        {"category": "Sexual", "severity": 0},
                        {"category": "Violence", "severity": 6 if violent else 0},
                    ],
                }
            )

        return Starlette(routes=[Route("/contentsafety/text:analyze", analyze, methods=["POST"])])


class BlockWord:
    """A team's own check, plugged in with CONTENT_SAFETY__PROVIDER=tests.support.content_safety:block_word."""

    async def check(self, text: str, *, source: str) -> SafetyVerdict:
        if "explode" in text:
            raise RuntimeError("classifier crashed")
        return SafetyVerdict("forbidden" not in text, "custom: forbidden word")


def block_word(settings: Settings) -> BlockWord:
    return BlockWord()
