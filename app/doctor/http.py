"""The doctor's HTTP: one sync httpx2 client with short timeouts that sends no credentials, follows redirects only
within one origin, and turns every failure into a value (`Fetched.problem`) instead of an exception."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2

TIMEOUT = httpx2.Timeout(5.0, connect=3.0)
_REDIRECTS = 3
_BODY_LIMIT = 1_000_000  # a metadata document is a few kB; a bigger answer is not one


def client(verify: bool = True) -> httpx2.Client:
    """The doctor's client: no redirects followed by httpx2 itself (see `fetch`), no auth, short timeouts."""
    return httpx2.Client(timeout=TIMEOUT, follow_redirects=False, verify=verify)


@dataclass
class Fetched:
    """One answer: `status` 0 and `problem` set when there was none (refused, timed out, bad URL, redirect away)."""

    url: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # the parsed JSON, or None
    problem: str = ""

    @property
    def answered(self) -> bool:
        return not self.problem

    def document(self) -> dict[str, Any] | None:
        """The body when it is a JSON object, else None."""
        return self.body if isinstance(self.body, dict) else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def fetch(http: httpx2.Client, url: str, method: str = "GET", **options: Any) -> Fetched:
    """`method url`, following at most a few redirects that stay on the same origin; never raises."""
    current = url
    try:
        for _ in range(_REDIRECTS + 1):
            response = http.request(method, current, **options)
            if response.is_redirect and (location := response.headers.get("location")):
                target = urljoin(current, location)
                if _origin(target) != _origin(current):
                    host = urlsplit(target).netloc or target[:80]
                    return Fetched(url, response.status_code, problem=f"redirects to another host ({host})")
                current = target
                continue
            return _answer(url, response)
        return Fetched(url, problem=f"more than {_REDIRECTS} redirects")
    except httpx2.TimeoutException:
        return Fetched(url, problem="no answer in time (timed out)")
    except httpx2.TransportError as exc:
        return Fetched(url, problem=f"unreachable ({type(exc).__name__}: {_short(exc)})")
    except Exception as exc:  # a malformed URL, an unsupported scheme: the URL came from a document we checked
        return Fetched(url, problem=f"cannot be requested ({type(exc).__name__})")


def _answer(url: str, response: httpx2.Response) -> Fetched:
    headers = {name.lower(): value for name, value in response.headers.items()}
    body: Any = None
    if len(response.content) <= _BODY_LIMIT:
        try:
            body = response.json()
        except ValueError:
            body = None
    return Fetched(url, response.status_code, headers, body)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] or "no detail"
