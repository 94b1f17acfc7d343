"""When on-behalf-of needs the user: which Entra refusals the user can fix, and the hook that offers them the fix.

Entra refuses an on-behalf-of exchange the user can fix when the user has not consented to the downstream API
(AADSTS65001, `suberror: consent_required`) or Conditional Access wants more of them (`interaction_required`,
AADSTS50076/50079, a `claims` challenge). MSAL hands the error response through as `error`, `suberror`,
`error_codes` and `claims`. `user_action(...)` reads that; `ConsentRecovery` (the connect page, app/connect/, plugged
in at the composition root) turns it into a link the MCP client shows its user (URL-mode elicitation).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Reason = Literal["consent_required", "interaction_required"]
MAX_CLAIMS = 4096  # a claims challenge is a small JSON object; anything longer is not one we forward

# AADSTS codes whose remedy is the user signing in interactively: consent missing or declined (65001, 65004); MFA
# required or its enrolment (50076, 50079, 50072, 50074); an external security challenge (50158). Not: blocked by
# Conditional Access (53003) or not assigned to the app (50105): an administrator's to fix, not the user's.
_CONSENT_CODES = {65001, 65004}
_INTERACTION_CODES = {50072, 50074, 50076, 50079, 50158}
# MSAL's documented suberrors that an interactive sign-in resolves; others (bad_token, token_expired, ...) are the
# MCP client's to fix with a fresh token of its own.
_INTERACTIVE_SUBERRORS = {"consent_required", "basic_action", "additional_action", "message_only"}


@dataclass(frozen=True)
class ConsentNeed:
    """What the user must do, for whom: the triggering principal (tenant + object id) and the client it called
    through, the downstream scopes, Entra's claims challenge (a JSON object as a string) when there was one, and why."""

    tenant: str
    user: str
    scopes: tuple[str, ...]
    reason: Reason
    claims: str | None = None
    client: str = ""


@dataclass(frozen=True)
class ConnectLink:
    """A pending connect request: `url` is what the client shows its user (no PII, no token: an opaque id), `id` the
    server's handle on it, `elicitation_id` the 2025-11-25 `elicitationId`, `message` why the user should open it."""

    id: str
    url: str
    elicitation_id: str
    message: str


Notify = Callable[[], Awaitable[None]]


class ConsentRecovery(Protocol):
    """Offers the user a way to fix a `ConsentNeed` (app/connect/ implements it for one MCP server)."""

    async def link(self, need: ConsentNeed, reuse: str | None = None) -> ConnectLink:
        """The pending connect request for `need` (the one named `reuse` when it is still pending for the same user
        and need, else an existing one for the same user and need, else a new one)."""
        ...

    def on_complete(self, link_id: str, notify: Notify) -> None:
        """Call `notify` (best effort, this process only) once the user completed `link_id`."""
        ...


def user_action(result: Mapping[str, Any]) -> Reason | None:
    """Why the user must act, from MSAL's error result of an on-behalf-of exchange; None when they cannot fix it."""
    codes = {code for code in result.get("error_codes") or () if isinstance(code, int)}
    suberror, error = result.get("suberror"), result.get("error")
    if codes & _CONSENT_CODES or suberror == "consent_required" or error == "consent_required":
        return "consent_required"
    if claims_challenge(result) is not None or codes & _INTERACTION_CODES:
        return "interaction_required"
    if error == "interaction_required" and (suberror is None or suberror in _INTERACTIVE_SUBERRORS):
        return "interaction_required"
    return None


def claims_challenge(result: Mapping[str, Any]) -> str | None:
    """The `claims` of an error result when it is a JSON object of a sane size (what Entra's authorize takes back)."""
    claims = result.get("claims")
    if not isinstance(claims, str) or not claims or len(claims) > MAX_CLAIMS:
        return None
    try:
        parsed = json.loads(claims)
    except ValueError:
        return None
    return claims if isinstance(parsed, dict) else None
