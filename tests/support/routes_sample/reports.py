"""Test routes: a scope guard with a path parameter, an any-caller route, and a route declared public."""

from typing import Annotated, Any

from fastapi import APIRouter

from app import Caller, Principal, authenticated, public, requires

router = APIRouter(prefix="/api")


@router.get("/reports/{report_id}")  # the guard as a parameter type: guard and caller in one (still supported)
async def report(
    report_id: int, caller: Annotated[Principal, requires(scopes=["reports.read"], roles=["reports.read.all"])]
) -> dict[str, Any]:
    return {"report": report_id, "for": caller.key}


@router.post("/echo", dependencies=[authenticated])
async def echo(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "app" if caller.is_app else "user", "keys": sorted(body)}


@router.get("/status", dependencies=[public])
async def status() -> dict[str, str]:
    return {"status": "ok"}
