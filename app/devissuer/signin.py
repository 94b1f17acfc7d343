"""The dev issuer's sign-in page: plain server-rendered HTML, no script; every value escaped.

One form: pick a test user, the scopes and app roles to grant, then one submit. The form carries the authorization
request back as the client sent it (validated again on POST), with a signed, expiring form token, so only a page this
issuer rendered can be submitted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Sequence
from html import escape

from app.authserver.pages import html_page
from app.devissuer.rules import AuthRequest, DevUser

FORM_SECONDS = 600

_STYLE = """h1{font-size:1.4rem;margin:.2rem 0 1rem}
.badge{display:inline-block;background:#fef3c7;color:#92400e;border:1px solid #f59e0b;border-radius:999px;
padding:.1rem .7rem;font-size:.8rem;font-weight:600}
fieldset{border:1px solid #e5e7eb;border-radius:8px;margin:1rem 0;padding:.6rem 1rem}
legend{font-weight:600;padding:0 .3rem}
label{display:block;margin:.35rem 0;cursor:pointer}
small,.muted{color:#6b7280}
.tag{font-size:.75rem;color:#1d4ed8;margin-left:.3rem}
button{background:#2563eb;color:#fff;border:0;border-radius:6px;padding:.6rem 1.6rem;font-size:1rem;cursor:pointer}
button:focus{outline:3px solid #93c5fd}
"""


class FormTokens:
    """HMAC over the carried request parameters and the time the page was rendered; valid for FORM_SECONDS."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def issue(self, params: dict[str, str], now: float | None = None) -> str:
        stamp = str(int(now if now is not None else time.time()))
        return f"{stamp}.{self._mac(params, stamp)}"

    def valid(self, token: str, params: dict[str, str]) -> bool:
        stamp, _, mac = token.partition(".")
        if not stamp.isdigit() or not 0 <= time.time() - int(stamp) <= FORM_SECONDS:
            return False
        return hmac.compare_digest(mac, self._mac(params, stamp))

    def _mac(self, params: dict[str, str], stamp: str) -> str:
        payload = json.dumps([stamp, sorted(params.items())], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(hmac.new(self.key, payload, hashlib.sha256).digest()).decode().rstrip("=")


def render_sign_in(
    request: AuthRequest,
    form_token: str,
    *,
    action: str,
    server_name: str,
    client_id: str,
    app_id_uri: str,
    users: Sequence[DevUser],
    offered_scopes: Iterable[tuple[str, bool, bool]],
    roles: Iterable[str],
) -> str:
    """`offered_scopes`: (short name, pre-selected, requested by the client)."""
    e = escape
    hidden = "".join(
        f'<input type="hidden" name="{e(name)}" value="{e(value)}">' for name, value in request.params.items()
    )
    user_rows = "".join(
        f'<label><input type="radio" name="user" value="{e(user.oid)}"{" checked" if i == 0 else ""}> '
        f"{e(user.name)} <small>{e(user.username)}</small></label>"
        for i, user in enumerate(users)
    )
    scope_rows = (
        "".join(
            f'<label><input type="checkbox" name="grant_scope" value="{e(name)}"{" checked" if selected else ""}> '
            f"<code>{e(name)}</code>{'<span class=tag>requested</span>' if requested else ''}</label>"
            for name, selected, requested in offered_scopes
        )
        or '<p class="muted">This server declares no delegated scopes.</p>'
    )
    role_rows = (
        "".join(
            f'<label><input type="checkbox" name="grant_role" value="{e(role)}"> <code>{e(role)}</code></label>'
            for role in roles
        )
        or '<p class="muted">This server declares no app roles.</p>'
    )
    offline = (
        "<p>The client asked to stay signed in (<code>offline_access</code>): it also gets a refresh token.</p>"
        if request.offline
        else ""
    )
    resource = request.resource or app_id_uri
    body = f"""<span class="badge">Development only: this page stands in for Entra ID sign-in</span>
<h1>Sign in to {e(server_name)}</h1>
<p>The MCP client <code>{e(client_id)}</code> asks for access to <code>{e(resource)}</code>.
Choose who you are and what to grant. There is no password.</p>
<form method="post" action="{e(action)}">{hidden}
<input type="hidden" name="form_token" value="{e(form_token)}">
<fieldset><legend>Test user</legend>{user_rows}</fieldset>
<fieldset><legend>Delegated scopes <small>(scp)</small></legend>{scope_rows}</fieldset>
<fieldset><legend>App roles <small>(roles)</small></legend>{role_rows}</fieldset>
{offline}<p class="muted">You then return to <code>{e(request.redirect_uri)}</code>.</p>
<button type="submit">Sign in</button>
</form>"""
    return html_page(f"Sign in to {server_name} (dev issuer)", body, _STYLE)
