"""Small wire helpers of the emulators: JSON answers, HTML error pages, loopback checks."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

JsonDict = dict[str, Any]
T = TypeVar("T")

_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine (localhost, 127.0.0.0/8, ::1)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return host is not None and ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def json_response(body: Any, status: int = 200) -> web.Response:
    """A UTF-8 JSON answer (Cyrillic and emoji stay readable in logs). Python ints are
    written exactly, however big (Viber's 64-bit message tokens)."""
    return web.Response(
        text=json.dumps(body, ensure_ascii=False), status=status, content_type="application/json"
    )


def html_page(status: int) -> str:
    """The kind of page a proxy in front of a messenger's API answers with in an incident."""
    return _HTML.format(status=status, reason=_REASONS.get(status, "Error"))


def html_error(status: int) -> web.Response:
    """:func:`html_page` as an aiohttp answer with that status."""
    return web.Response(status=status, text=html_page(status), content_type="text/html")


def optional(value: Any, convert: Callable[[Any], T], fail: Callable[[], Exception]) -> T | None:
    """``None`` for an absent or empty parameter, else ``convert(value)``; a value that does
    not convert raises what ``fail`` makes (each platform words its own error)."""
    if value is None or value == "":
        return None
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise fail() from None
