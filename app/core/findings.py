"""One finding of a configuration check (`doctor`, `entra register --check`): what was checked, how it stands, and
the fix, in one line each. Plain values, so the checks stay free of printing and the CLI renders text or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "error", "skip"]


@dataclass(frozen=True)
class Finding:
    """`check`: a short stable id (`jwks`, `app-id-uri`); `message`: what was found; `fix`: what to do (empty when
    nothing is to be done)."""

    check: str
    status: Status
    message: str
    fix: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def ok(check: str, message: str) -> Finding:
    return Finding(check, "ok", message)


def error(check: str, message: str, fix: str) -> Finding:
    return Finding(check, "error", message, fix)


def warn(check: str, message: str, fix: str) -> Finding:
    return Finding(check, "warn", message, fix)


def skip(check: str, message: str) -> Finding:
    return Finding(check, "skip", message)
