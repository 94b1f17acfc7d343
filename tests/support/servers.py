"""Run any ASGI app on a real uvicorn, on a free loopback port, in a background thread (shipped in app.testing)."""

from app.testing import ServerThread, free_port

__all__ = ["ServerThread", "free_port"]
