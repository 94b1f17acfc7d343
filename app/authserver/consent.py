"""The facade's consent page: plain server-rendered HTML, no script, every value escaped.

It names the client, its domain (verified for a CIMD client: its id is the URL its metadata came from), the MCP
server it asks for (with its URL when the app serves several), the host the browser returns to, and the requested
scopes in plain words (those the user has not approved for this client before marked new), with Approve and Deny.
The form is CSRF-protected by a token that is both in the form and in a cookie set with the page, and whose hash the
transaction holds: a form re-posted from another browser, without that cookie, is refused.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from app.authserver.clients import Client
from app.authserver.pages import html_page

_STYLE = """h1{font-size:1.35rem;margin:.2rem 0 1rem}
.ok{color:#047857;font-weight:600}.warn{color:#92400e;font-weight:600}
ul{padding-left:1.2rem}
button{border:0;border-radius:6px;padding:.6rem 1.6rem;font-size:1rem;cursor:pointer;margin-right:.6rem}
.approve{background:#2563eb;color:#fff}.deny{background:#e5e7eb;color:#111827}
"""


def plain_scope(scope: str, app_id_uri: str, server_name: str) -> str:
    """A requested scope in words a person can judge."""
    if scope == "offline_access":
        return "Stay signed in: the client may renew its access without asking you again"
    if scope in ("openid", "profile", "email"):
        return f"Know who you are ({scope})"
    name = scope.removeprefix(app_id_uri + "/")
    if name == ".default":
        return f"Everything {server_name} lets its clients do"
    return f"Use {server_name} with the permission {name!r}"


def render_consent(
    client: Client,
    *,
    redirect_uri: str,
    scopes: list[str],
    new: list[str],
    transaction: str,
    csrf: str,
    action: str,
    server_name: str,
    app_id_uri: str,
    resource: str | None = None,
) -> str:
    """`resource`: the server's URL, shown when the app serves several (so a user can tell which is asked for)."""
    e = escape
    if client.kind == "cimd":
        who = f'<p>Its identity is <span class="ok">verified</span>: it is published at <code>{e(client.client_id)}</code> on <b>{e(client.domain or "")}</b>.</p>'  # noqa: E501
    elif client.kind == "pre-registered":
        who = '<p>It is <span class="ok">registered</span> with this server by its operators.</p>'
    else:
        who = '<p class="warn">It registered itself: nothing about its name is verified.</p>'
    mark = ' <span class="warn">(new)</span>'
    items = "".join(f"<li>{e(plain_scope(s, app_id_uri, server_name))}{mark if s in new else ''}</li>" for s in scopes)
    asks = "It now asks for more than you approved before. It asks to:" if new else "It asks to:"
    host = urlsplit(redirect_uri).netloc
    at = f"<p>{e(server_name)} is the MCP server at <code>{e(resource)}</code>.</p>" if resource else ""
    body = f"""<h1>Allow <b>{e(client.client_name)}</b> to use {e(server_name)} as you?</h1>
{at}{who}
<p>{asks}</p><ul>{items}</ul>
<p>After you approve and sign in, you return to <code>{e(host)}</code>.</p>
<p>Approve only if you started this from that app. You can sign in to {e(server_name)} next.</p>
<form method="post" action="{e(action)}">
<input type="hidden" name="transaction" value="{e(transaction)}">
<input type="hidden" name="csrf" value="{e(csrf)}">
<button class="approve" type="submit" name="decision" value="approve">Approve</button>
<button class="deny" type="submit" name="decision" value="deny">Deny</button>
</form>"""
    return html_page(f"Allow {client.client_name} to use {server_name}?", body, _STYLE)


def render_error(title: str, description: str) -> str:
    return html_page(title, f"<h1>{escape(title)}</h1><p>{escape(description)}</p>", _STYLE)
