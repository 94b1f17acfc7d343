"""The connect page: on-behalf-of consent recovered through URL-mode elicitation (docs/consent.md).

A pluggable room: the composition root builds `Links` when CONNECT__ENABLED, hands each server's on-behalf-of client
its `ServerLinks` (the `ConsentRecovery` app/auth/downstream.py raises `ConsentRequired` with), and mounts
`connect_routes`. Nothing else in the app knows it is there.
"""

from __future__ import annotations

from app.connect.links import CALLBACK_PATH, Links, Served, ServerLinks
from app.connect.routes import connect_routes

__all__ = ["CALLBACK_PATH", "Links", "Served", "ServerLinks", "connect_routes"]
