"""`settings`: the effective settings as the app reads them, one `NAME=value` line each (or JSON), secrets masked.

Every secret is a `SecretStr` field (the settings reference marks them), which pydantic dumps as `**********`; a test
holds every secret field to that.
"""

from __future__ import annotations

import json
from typing import Any

from app.settings import Settings


def effective(settings: Settings, as_json: bool = False) -> str:
    dumped = settings.model_dump(mode="json")
    if as_json:
        return json.dumps(dumped, indent=2, sort_keys=True)
    return "\n".join(f"{name}={value}" for name, value in _lines(dumped, ""))


def _lines(value: Any, prefix: str) -> list[tuple[str, str]]:
    if isinstance(value, dict) and value and prefix.count("__") < 3:
        out: list[tuple[str, str]] = []
        for key in sorted(value):
            out.extend(_lines(value[key], f"{prefix}__{key}".upper() if prefix else str(key).upper()))
        return out
    if isinstance(value, str):
        return [(prefix, value)]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return [(prefix, ",".join(value))]
    return [(prefix, "" if value is None else json.dumps(value))]
