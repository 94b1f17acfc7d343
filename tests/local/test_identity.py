"""The signed-in user as local mode's caller: who from the ID token, what from the access token, including the
authentication contexts (`acrs`) the sign-in satisfied, so `@tool(auth_context=...)` holds over stdio too."""

from __future__ import annotations

from typing import Any

import jwt
import msal

from app.local.identity import LocalIdentity, SignIn

ID_CLAIMS = {"tid": "t-1", "oid": "o-1", "sub": "s-1", "iss": "https://login.example/t-1/v2.0", "name": "Alice"}


def _principal(access: dict[str, Any]) -> Any:
    identity = LocalIdentity(SignIn("https://login.example/t-1", "c-1", "api://c-1"), [], msal.TokenCache())
    token = jwt.encode({"scp": "mcp.read", "exp": 2_000_000_000, **access}, "not-verified-here", algorithm="HS256")
    return identity.principal({"access_token": token, "id_token_claims": ID_CLAIMS})


def test_the_access_tokens_authentication_contexts_become_the_callers() -> None:
    caller = _principal({"acrs": ["c1", "c7"]})
    assert caller.acrs == frozenset({"c1", "c7"}) and caller.oid == "o-1" and caller.scopes == frozenset({"mcp.read"})


def test_no_or_malformed_acrs_is_none_satisfied() -> None:
    assert _principal({}).acrs == frozenset()
    assert _principal({"acrs": "c1"}).acrs == frozenset()
    assert _principal({"acrs": ["c2", 3, None]}).acrs == frozenset({"c2"})
