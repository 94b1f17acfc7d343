"""Rate-limited test routes (tests/edge/test_route_limits.py): a limit per caller, and one per client IP on a public
one."""

from typing import Any

from fastapi import APIRouter, Request

from app import Caller, limiter, public

router = APIRouter(prefix="/api/limited")


@router.get("/caller")
@limiter.limit("5/minute")
async def per_caller(request: Request, caller: Caller) -> dict[str, Any]:
    return {"caller": caller.key}


@router.get("/public", dependencies=[public])
@limiter.limit("3/minute")
async def per_ip(request: Request) -> dict[str, Any]:
    return {"status": "ok"}
