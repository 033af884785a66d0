"""The production log configuration in a test: its output captured, everything restored."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator

import structlog

from gateway import logging as gateway_logging


@contextlib.contextmanager
def production_logs(level: str, secrets: Iterable[str] = ()) -> Iterator[io.StringIO]:
    """``configure`` as ``gateway run`` does (JSON), writing into the yielded buffer."""
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("aiohttp.access", "aiogram")}
    output = io.StringIO()
    try:
        gateway_logging.configure(level, "json", secrets)
        structlog.configure(cache_logger_on_first_use=False)  # restorable afterwards
        for handler in root.handlers:
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(output)
        yield output
    finally:
        structlog.configure(**saved)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, was in quiet.items():
            logging.getLogger(name).setLevel(was)
