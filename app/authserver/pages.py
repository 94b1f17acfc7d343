"""The chrome of both authorization servers' browser pages (this facade's consent and error pages, the development
issuer's sign-in page): one HTML skeleton and base style, and the security headers with their CSP.

No script, no framing, nothing but inline style; a form may post only here, and be redirected only to the targets
its page names.
"""

from __future__ import annotations

from html import escape

from app.authserver.protocol import origin

BASE_STYLE = """
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;background:#f3f4f6;color:#111827;margin:0}
main{max-width:34rem;margin:2.5rem auto;background:#fff;border:1px solid #d1d5db;border-radius:10px;padding:2rem}
code{background:#f3f4f6;border-radius:4px;padding:0 .25rem;font-size:.85em;word-break:break-all}
"""

PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def form_page_headers(*redirect_targets: str) -> dict[str, str]:
    """A page with a form: it posts here only, and browsers hold the post's redirects to `form-action` too."""
    origins = " ".join(origin(url) for url in redirect_targets)
    csp = PAGE_HEADERS["content-security-policy"] + f"; form-action 'self' {origins}"
    # `same-origin`, not `no-referrer`: with no referrer the form post's Origin is `null`, which is refused.
    return PAGE_HEADERS | {"content-security-policy": csp, "referrer-policy": "same-origin"}


def html_page(title: str, body: str, style: str = "") -> str:
    """The page around `body` (markup, escaped by its maker); `title` is escaped here; `style` adds to the base."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)}</title><style>{BASE_STYLE}{style}</style></head>
<body><main>
{body}</main></body></html>
"""
