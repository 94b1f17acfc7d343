"""Redaction of known secret values, bearer tokens and JWT-shaped strings: in logs, errors and tool results."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from pydantic_core import PydanticSerializationError, to_json

MASK = "[REDACTED]"
# A bearer credential after the scheme name, and any three-part base64url JWT (header and payload start `eyJ`).
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{20,}=*")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_BEARER_MIN = len("bearer") + 1 + 20  # the shortest text _BEARER can match
# Attributes every LogRecord has; anything else on a record came from `extra=` and is redacted too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class _Compiled(NamedTuple):
    key: tuple[frozenset[str], ...]
    secrets: re.Pattern[str] | None  # every current secret value, longest first
    shortest: int  # length of the shortest secret value
    needles: tuple[bytes, ...]  # every secret value as UTF-8, for the pre-scan of a result's JSON
    escapable: bool  # some secret has a character JSON escapes, so the pre-scan could miss it


def _compile(key: tuple[frozenset[str], ...]) -> _Compiled:
    values = sorted({v for group in key for v in group if v}, key=len, reverse=True)
    alternation = "|".join(map(re.escape, values))
    return _Compiled(
        key,
        re.compile(alternation) if values else None,
        len(values[-1]) if values else 0,
        tuple(v.encode("utf-8", "surrogatepass") for v in values),
        any(not _verbatim(c) for c in {c for v in values for c in v}),
    )


def _verbatim(char: str) -> bool:
    """Whether pydantic-core's JSON carries `char` as its own UTF-8 bytes (not escaped, not refused)."""
    try:
        return to_json(char) == b'"' + char.encode() + b'"'
    except (PydanticSerializationError, UnicodeEncodeError):
        return False


class Redactor:
    """Masks every value the registered providers report as secret, plus bearer tokens and JWTs."""

    def __init__(self) -> None:
        self._providers: list[Callable[[], frozenset[str]]] = []
        self._compiled = _compile(())

    def add(self, provider: Callable[[], frozenset[str]]) -> None:
        self._providers.append(provider)

    def remove(self, provider: Callable[[], frozenset[str]]) -> None:
        if provider in self._providers:
            self._providers.remove(provider)

    def _current(self) -> _Compiled:
        key = tuple(provider() for provider in self._providers)
        if key != self._compiled.key:
            self._compiled = _compile(key)
        return self._compiled

    def text(self, value: str) -> str:
        compiled = self._current()
        return self._text(value, compiled.secrets, compiled.shortest)

    def data(self, value: Any) -> Any:
        """Redact every string inside JSON-shaped data (a tool result's wire form); unchanged data is returned as is.

        One native pass over the data's JSON (pydantic-core's encoder) first: every match inside a string also
        shows in its JSON text (JWTs and the word "bearer" have no characters JSON escapes; secrets that do are
        never pre-scanned), so data the pass finds nothing in needs no walk.
        """
        compiled = self._current()
        if not compiled.escapable:
            try:
                clean = not _suspect(to_json(value, fallback=str), compiled.needles)
            except (ValueError, RecursionError):  # PydanticSerializationError is a ValueError
                clean = False  # not JSON-shaped, or text UTF-8 cannot carry: walk it
            if clean:
                return value
        return self._data(value, compiled.secrets, compiled.shortest)

    def _data(self, value: Any, secrets: re.Pattern[str] | None, shortest: int) -> Any:
        if isinstance(value, str):
            return self._text(value, secrets, shortest)
        if isinstance(value, dict):
            return {key: self._data(item, secrets, shortest) for key, item in value.items()}
        if isinstance(value, list):
            return [self._data(item, secrets, shortest) for item in value]
        return value

    @staticmethod
    def _text(value: str, secrets: re.Pattern[str] | None, shortest: int) -> str:
        # The length and "eyJ" tests only skip regex scans that could not match (this runs on every result string).
        if secrets is not None and len(value) >= shortest:
            value = secrets.sub(MASK, value)
        if "eyJ" in value:
            value = _JWT.sub(MASK, value)
        if len(value) >= _BEARER_MIN:
            value = _BEARER.sub(lambda m: m.group(1) + MASK, value)
        return value


def _suspect(raw: bytes, needles: tuple[bytes, ...]) -> bool:
    """Whether anything in `raw` could start a redaction: a JWT's `eyJ`, "bearer" in any case, or a secret.

    Substring tests, not a regex: an alternation with a case-insensitive branch is tried at every position."""
    # bytes.lower() folds ASCII only, which suffices: no other character matches b, e, a or r case-insensitively.
    if b"eyJ" in raw or b"bearer" in raw.lower():
        return True
    return any(needle in raw for needle in needles) if needles else False


REDACTOR = Redactor()  # one per process: log records do not know which app they belong to


class SecretRedactor(logging.Filter):
    """Rewrites a record in place so no formatter can see a secret: message, args, extras, traceback, stack."""

    _formatter = logging.Formatter()

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        scrub(record, self.redactor)
        return True


_PLAIN_ARGS = (str, int, float, bool, type(None))


def scrub(record: logging.LogRecord, redactor: Redactor = REDACTOR, keep_args: bool = False) -> logging.LogRecord:
    """Redact one record; idempotent. On any failure the message is dropped rather than leaked.

    `keep_args` (at record creation) redacts plain arguments one by one and keeps them as arguments, so logger
    filters that rewrite arguments (e.g. the access log's query-string filter) still see them."""
    try:
        args = record.args
        if (
            keep_args
            and isinstance(record.msg, str)
            and isinstance(args, tuple)
            and all(isinstance(arg, _PLAIN_ARGS) for arg in args)
        ):
            record.msg = redactor.text(record.msg)
            record.args = tuple(redactor.text(arg) if isinstance(arg, str) else arg for arg in args)
        else:
            record.msg, record.args = redactor.text(record.getMessage()), None
        if record.exc_info:
            # Formatters would re-render exc_info; keep only the redacted text (formatters print exc_text).
            text = record.exc_text or SecretRedactor._formatter.formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = redactor.text(text)
        elif record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redactor.text(value))
    except Exception:
        record.msg, record.args, record.exc_info, record.exc_text = (
            "[log record dropped: redaction failed]",
            None,
            None,
            None,
        )
    return record


_FILTER = SecretRedactor()
_factory_installed = False


def install_redaction(provider: Callable[[], frozenset[str]] | None = None) -> SecretRedactor:
    """Register a provider of secret values, and put the filter on every handler (and on records as created).

    The record-factory hook covers handlers added later (e.g. a JSON handler installed after startup).
    """
    global _factory_installed
    if provider is not None:
        REDACTOR.add(provider)
    for handler in _all_handlers():
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    if not _factory_installed:
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            return scrub(previous(*args, **kwargs), keep_args=True)

        logging.setLogRecordFactory(factory)
        _factory_installed = True
    return _FILTER


def _all_handlers() -> Iterable[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for logger in loggers:
        yield from list(logger.handlers)
