"""uvicorn's access log, minus query strings: a client may put a token there, and we never log tokens."""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


class DropQueryString(logging.Filter):
    """Keeps the request path and drops `?…` from uvicorn's access-log arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn logs: '%s - "%s %s HTTP/%s" %d' % (client, method, full_path, http_version, status)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (args[0], args[1], args[2].split("?", 1)[0] + "?…", args[3], args[4])
        return True


def install_access_log_filter() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, DropQueryString) for f in logger.filters):
        logger.addFilter(DropQueryString())
