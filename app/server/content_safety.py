"""The content-safety seam: one async method returning a verdict (`AzureContentSafety` is the shipped one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SafetyVerdict:
    """A content-safety decision; `reason` names categories only, never the text."""

    allowed: bool
    reason: str = ""


@runtime_checkable
class ContentSafetyCheck(Protocol):
    """The hook: one async method. Implement it to plug in any classifier; `AzureContentSafety` is the shipped one."""

    async def check(self, text: str, *, source: str) -> SafetyVerdict: ...
