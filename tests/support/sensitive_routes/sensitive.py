"""Routes behind an authentication context and an agent policy."""

from fastapi import APIRouter

from app import requires

router = APIRouter(prefix="/api")


@router.post("/payments/approve", dependencies=[requires(scopes=["payments.approve"], auth_context="c1")])
async def approve() -> dict[str, str]:
    return {"status": "approved"}


@router.get("/agents-denied", dependencies=[requires(scopes=["mcp.read"], roles=["Jobs.Run"], agents="deny")])
async def agents_denied() -> dict[str, str]:
    return {"status": "ok"}
