"""Console logs: readable lines in development by default, JSON in production; neither carries uvicorn's colour
codes; an explicit LOG_FORMAT wins in either environment."""

from __future__ import annotations

import json
import logging

from app.observability.logging import JsonFormatter, TextFormatter
from app.settings import Settings

COLOURED = "\x1b[32mGET /mcp\x1b[0m"


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "started %s", ("ok",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_text_lines_are_plain_and_keep_the_extra_fields() -> None:
    line = TextFormatter().format(_record(color_message=COLOURED, tool="search"))
    assert "INFO" in line and "uvicorn.error: started ok" in line and "tool=search" in line
    assert "\x1b" not in line and "color_message" not in line


def test_json_lines_drop_the_coloured_copy() -> None:
    entry = json.loads(JsonFormatter().format(_record(color_message=COLOURED, tool="search")))
    assert entry["message"] == "started ok" and entry["tool"] == "search" and "color_message" not in entry


def test_the_default_format_follows_app_env_and_an_explicit_one_wins() -> None:
    production = {"azuread": {"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47", "client_id": "api-client"}}
    production |= {"mcp": {"resource_host": "https://mcp.contoso.com"}}
    assert Settings(app_env="development", _env_file=None).log_style == "text"
    assert Settings(app_env="production", _env_file=None, **production).log_style == "json"
    assert Settings(app_env="development", log_format="json", _env_file=None).log_style == "json"
    assert Settings(app_env="production", log_format="text", _env_file=None, **production).log_style == "text"
