"""A stand-in the doctor's tests need beyond the shared ones: a small server that answers whatever documents a test
sets, to feed the checks wrong or broken metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Documents:
    """A server that answers each path with the (status, JSON body, headers) a test sets; 404 otherwise."""

    answers: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    base: str = ""

    def set(self, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.answers[path] = (status, body, headers or {})

    def app(self) -> Starlette:
        async def answer(request: Request) -> Response:
            found = self.answers.get(request.url.path)
            if found is None:
                return Response(status_code=404)
            status, body, headers = found
            return JSONResponse(body, status_code=status, headers=headers)

        return Starlette(routes=[Route("/{rest:path}", answer, methods=["GET", "POST"])])
