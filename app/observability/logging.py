"""Logging at `LOG_LEVEL` on stderr: one JSON object per line, with the current trace and span ids (production's
default, for a log pipeline), or one readable line per event (`text`, development's default, for a person).

stdout is left to the audit log (`AUDIT__SINK=stdout`), so the two streams never interleave.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

# Attributes every LogRecord has; anything else on a record came from `extra=` and is emitted as a field.
# uvicorn's `color_message` repeats the message with ANSI colour codes: noise in a JSON field, and in a text line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SKIPPED = _STANDARD | {"color_message"}
_MARK = "_app_handler"
# Libraries that log whole wire messages (tool arguments, results) at DEBUG: they stay at INFO even when
# LOG_LEVEL=DEBUG, so turning up our own logging never writes raw arguments.
PAYLOAD_LOGGERS = ("mcp", "sse_starlette", "httpcore", "httpcore2", "httpx", "httpx2")


class JsonFormatter(logging.Formatter):
    """stdlib `json` plus the OTel API is all a one-line-per-event formatter needs, so no extra dependency."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One plain line per event for a console: local time, level, logger, the message, then any `extra=` fields as
    `key=value`; no colour codes, so it reads the same in a terminal, a file and a CI log."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        line = f"{line}  [{fields}]" if fields else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record got from `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in _SKIPPED and not k.startswith("_")}


def configure_logging(level: str = "INFO", fmt: str = "json") -> logging.Handler:
    """Install (or replace) the app's root handler and route uvicorn's loggers through it; returns the handler,
    so filters (e.g. secret redaction) attach to the one place every line passes. `level`: LOG_LEVEL; `fmt`:
    LOG_FORMAT (`json` or `text`)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _MARK, True)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    handler.setLevel(level)
    root.addHandler(handler)
    # Lower the root level to LOG_LEVEL, never raise it: a harness that listens at DEBUG keeps hearing everything,
    # while this handler still writes only LOG_LEVEL and above.
    root.setLevel(min(root.level, logging.getLevelName(level)))
    # Payload loggers: never below INFO, and not below LOG_LEVEL either (else the SDK's per-request INFO lines are
    # built, and scrubbed, only for the handler to drop them).
    floor = max(logging.INFO, logging.getLevelName(level))
    for name in PAYLOAD_LOGGERS:
        logging.getLogger(name).setLevel(floor)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
