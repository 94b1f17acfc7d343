"""A local OSV vulnerability database stand-in (the `/v1/query` API pip-audit's OSV service calls)."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

VULN_ID = "GHSA-test-0000-0001"
ALIAS = "CVE-2099-0001"


@dataclass
class OsvStandIn:
    """Reports one vulnerability (fixed in 99.0) for every package named in `vulnerable`; queries are recorded."""

    vulnerable: set[str] = field(default_factory=set)
    queried: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def query(request: Request) -> Response:
            body = await request.json()
            name = body["package"]["name"]
            self.queried.append(name)
            if name not in self.vulnerable:
                return JSONResponse({})
            affected = {
                "package": {"name": name, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99.0"}]}],
            }
            vuln = {"id": VULN_ID, "aliases": [ALIAS], "summary": "test vulnerability", "affected": [affected]}
            return JSONResponse({"vulns": [vuln]})

        return Starlette(routes=[Route("/v1/query", query, methods=["POST"])])
