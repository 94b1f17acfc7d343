"""A route guarded by notes.read: for the scope-hierarchy tests."""

from fastapi import APIRouter

from app import requires

router = APIRouter(prefix="/api")


@router.get("/notes", dependencies=[requires(scopes=["notes.read"])])
async def notes() -> dict[str, str]:
    return {"notes": "ok"}
