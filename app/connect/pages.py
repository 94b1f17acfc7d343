"""The connect page's HTML: what the user is asked to allow and why, and the outcome pages. Server-rendered, no
script, every value escaped, in the facade's chrome (app/authserver/pages.py). Nothing personal is shown: the page
does not know the user's name, only that a sign-in must match the account that asked."""

from __future__ import annotations

from html import escape

from app.authserver.pages import html_page

_STYLE = """h1{font-size:1.35rem;margin:.2rem 0 1rem}
ul{padding-left:1.2rem}.warn{color:#92400e;font-weight:600}
button{border:0;border-radius:6px;padding:.6rem 1.6rem;font-size:1rem;cursor:pointer;background:#2563eb;color:#fff}
"""


def permission(scope: str) -> str:
    """A downstream scope in words: `User.Read on graph.microsoft.com`."""
    if "://" in scope:
        host, _, name = scope.split("://", 1)[1].partition("/")
        return f"{name or '(all)'} on {host}"
    return scope


def render_start(server_name: str, scopes: list[str], reason: str, csrf: str, action: str) -> str:
    e = escape
    items = "".join(f"<li>{e(permission(scope))}</li>" for scope in scopes)
    why = (
        "It needs your permission, once, to use these for you:"
        if reason == "consent_required"
        else "Your organization requires you to sign in again (for example with multi-factor authentication) before "
        "it may use these for you:"
    )
    body = f"""<h1>Connect {e(server_name)}</h1>
<p>An MCP client you use asked {e(server_name)} to do something for you. {e(why)}</p>
<ul>{items}</ul>
<p>You will sign in with Microsoft. <span class="warn">Use the same account you use in your MCP client</span>: a
different account is refused and nothing is saved.</p>
<p>If you did not start this from your MCP client just now, close this page.</p>
<form method="post" action="{e(action)}">
<input type="hidden" name="csrf" value="{e(csrf)}">
<button type="submit">Continue to sign in</button>
</form>"""
    return html_page(f"Connect {server_name}", body, _STYLE)


def render_outcome(title: str, text: str) -> str:
    return html_page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>", _STYLE)


DONE = ("Connected", "You can close this page and return to your MCP client: retry what you asked for.")
EXPIRED = (
    "This link has expired",
    "It was used already, or it is older than a few minutes. Ask your MCP client again: it gives you a new link.",
)
OTHER_USER = (
    "Signed in with a different account",
    "You signed in with another account than the one your MCP client uses, so nothing was saved. Open the link "
    "again from your MCP client and sign in with that account.",
)
