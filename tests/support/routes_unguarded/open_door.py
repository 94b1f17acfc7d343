"""A route that forgot its auth: startup must refuse it, naming it."""

from fastapi import APIRouter

router = APIRouter()


@router.get("/api/open-door")
async def open_door() -> dict[str, str]:
    return {"status": "anyone"}
