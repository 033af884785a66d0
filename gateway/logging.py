"""structlog, configured once: JSON in production, pretty on a terminal, secrets redacted.

Every log line (ours and the libraries' through stdlib logging) passes the redaction
processor: configured secrets and anything shaped like a Telegram bot token are
replaced before rendering.

The gateway's own lines skip the stdlib ``LogRecord`` and handler machinery, which cost
about 60 µs a line (two records, a handler lock, caller lookup) — several percent of a
message's CPU at full load. They obey the stdlib levels all the same (the root level,
which a config reload changes, and per-logger ones) and are written, one flushed line
each, to the stream of the root handler that :func:`configure` installs, which the
libraries' lines (rendered the same way) go to as well.

A unit of work (a webhook, a handled stream entry, a timer) names what it is about with
:func:`new_context` and :func:`bind_context`; every line logged inside it (and inside
the tasks it starts) carries those fields. One context variable holds them, so starting
a unit costs one ``ContextVar.set``: structlog's own ``contextvars`` helpers scan the
whole context on every clear and every line, ~2% of the gateway's CPU at full load.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

import structlog
from structlog.processors import NAME_TO_LEVEL
from structlog.typing import EventDict

# A bot token, also inside a Bot API URL (".../bot123456:AAH.../sendMessage").
_TOKEN_SHAPE = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{20,}")
REDACTED = "***"


class Redactor:
    """A structlog processor that removes secrets from every string value."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, values))) if values else None

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        return _TOKEN_SHAPE.sub(REDACTED, text) if ":" in text else text

    def scrub(self, value: Any) -> Any:
        """``value`` with secrets removed from every string in it, containers included."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, BaseException):
            return self.redact(repr(value))
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set):
            return type(value)(self.scrub(v) for v in value)
        return value

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            event[key] = self.scrub(value)
        return event


REDACTOR = Redactor()


class LineLogger:
    """Where structlog hands a rendered line of ours: straight to the output stream."""

    def __init__(self, name: str, handler: logging.StreamHandler[Any]) -> None:
        self.name = name
        self.stdlib = logging.getLogger(name)  # its level (and the root's) decide
        self._handler = handler

    def _write(self, line: str) -> None:
        handler = self._handler
        with handler.lock or contextlib.nullcontext():
            handler.stream.write(line + handler.terminator)
            handler.flush()

    debug = info = warning = error = critical = exception = msg = _write


_NOTHING: Mapping[str, Any] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, Any]] = ContextVar("gateway_log_context", default=_NOTHING)


def new_context(**fields: Any) -> None:
    """Start the log context of a unit of work: these fields, and nothing from before."""
    _CONTEXT.set(fields)


def bind_context(**fields: Any) -> None:
    """Add ``fields`` to the current log context (a new mapping: tasks started earlier
    keep theirs)."""
    _CONTEXT.set({**_CONTEXT.get(), **fields})


def merge_context(logger: Any, method_name: str, event: EventDict) -> EventDict:
    """The processor that puts the log context into a line (its own fields win)."""
    for key, value in _CONTEXT.get().items():
        event.setdefault(key, value)
    return event


def enabled(logger: LineLogger, method_name: str, event: EventDict) -> EventDict:
    """Drop a line below its logger's level before any other processor runs."""
    stdlib = logger.stdlib
    if stdlib.disabled or NAME_TO_LEVEL[method_name] < stdlib.getEffectiveLevel():
        raise structlog.DropEvent
    return event


def configure(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    REDACTOR.set_secrets(secrets)
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        merge_context,
        structlog.processors.format_exc_info,
        REDACTOR,  # what was logged; the fields below are the gateway's own
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    handler = logging.StreamHandler()
    structlog.configure(
        processors=[enabled, *shared, renderer],
        logger_factory=lambda name=__name__, *_: LineLogger(name, handler),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log is noise at info level; aiogram logs requests with URLs.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiogram").setLevel(max(logging.INFO, root.level))
