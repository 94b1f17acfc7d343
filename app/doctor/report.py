"""The doctor's report: the guard that turns any exception of a check into an error finding, the text lines (one
per finding, its fix indented below, then a summary), the JSON document, and the exit code."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from app.core.findings import Finding, error

# status -> (mark on a terminal, word otherwise); the words are stable for scripts and logs
MARKS = {"ok": ("✓", "ok"), "warn": ("!", "warn"), "error": ("✗", "error"), "skip": ("-", "skip")}
BUG_FIX = "an unexpected failure inside the check: run again, and report it with this line if it persists"


def guarded(check: str, run: Callable[[], Iterable[Finding]]) -> list[Finding]:
    """`run()`'s findings; an exception becomes one error finding with its class name (never its text, which could
    quote a value), so no check can stop the others."""
    try:
        return list(run())
    except Exception as exc:
        return [error(check, f"the check failed: {type(exc).__name__}", BUG_FIX)]


def labelled(key: str, findings: Iterable[Finding]) -> list[Finding]:
    """A server's findings, each message prefixed with its key (`hr: …`); the first server's (key "") unchanged."""
    return [replace(f, message=f"{key}: {f.message}") if key else f for f in findings]


def exit_code(findings: Sequence[Finding]) -> int:
    """1 when any finding is an error, else 0."""
    return 1 if any(f.status == "error" for f in findings) else 0


def as_json(findings: Sequence[Finding]) -> str:
    """`{"ok": bool, "findings": [...]}` for CI."""
    document = {"ok": exit_code(findings) == 0, "findings": [f.as_json() for f in findings]}
    return json.dumps(document, indent=2, ensure_ascii=False)


def as_text(findings: Sequence[Finding], terminal: bool) -> str:
    """`✓ check: message` (or `ok check: message` when not a terminal), `  fix: …` below, then the counts."""
    lines = []
    for finding in findings:
        mark = MARKS[finding.status][0 if terminal else 1]
        lines.append(f"{mark} {finding.check}: {finding.message}")
        if finding.fix:
            lines.append(f"  fix: {finding.fix}")
    lines.append(summary(findings))
    return "\n".join(lines)


def summary(findings: Sequence[Finding]) -> str:
    counts: Counter[str] = Counter(f.status for f in findings)
    parts = [f"{counts[s]} {word}" for s, word in (("ok", "ok"), ("warn", "warning(s)"), ("error", "error(s)"))]
    parts.append(f"{counts['skip']} skipped")
    return ("unhealthy: " if counts["error"] else "healthy: ") + ", ".join(parts)
