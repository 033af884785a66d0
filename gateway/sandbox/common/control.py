"""Pieces of the ``/_control/...`` API every emulator's web-console tab talks to.

JSON in, JSON out. A handler returns a JSON-able value (or a ready aiohttp response, e.g.
file bytes); ``ValueError``, ``TypeError`` and ``KeyError`` raised by a handler — misuse by
the caller — become ``400 {"error": "..."}``. The feed's long poll,
``GET /_control/events?after=N&timeout=S``, is the same everywhere.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from .feed import Feed
from .net import JsonDict, json_response

MAX_EVENTS_TIMEOUT = 30.0
"""The longest a console long poll is held (seconds)."""

Endpoint = Callable[[web.Request], Awaitable[Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint(func: Endpoint) -> Handler:
    """Wrap a control handler: its result becomes JSON, misuse becomes a 400."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            result = await func(request)
        except (ValueError, KeyError, TypeError) as error:
            text = str(error) if not isinstance(error, KeyError) else f"missing field {error}"
            return json_response({"error": text}, status=400)
        if isinstance(result, web.StreamResponse):
            return result
        return json_response(result)

    return handler


async def read_body(request: web.Request) -> JsonDict:
    """The request's JSON object (``ValueError``/``TypeError`` otherwise, i.e. a 400)."""
    try:
        body = await request.json()
    except ValueError:
        raise ValueError("request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise TypeError("request body must be a JSON object")
    return body


def decode_file(file: JsonDict) -> bytes:
    """The bytes of a console upload ``{name, mime_type, content_b64}``."""
    try:
        return base64.b64decode(str(file["content_b64"]), validate=True)
    except binascii.Error:
        raise ValueError("file.content_b64 is not valid base64") from None


def events_endpoint(feed: Feed) -> Endpoint:
    """``GET /_control/events?after=N&timeout=S``: the feed's events after ``N``, held up
    to ``S`` seconds (at most :data:`MAX_EVENTS_TIMEOUT`) while there are none."""

    async def events(request: web.Request) -> JsonDict:
        after = int(request.query.get("after", "0"))
        timeout = min(max(float(request.query.get("timeout", "25")), 0.0), MAX_EVENTS_TIMEOUT)
        cursor, found = await feed.wait_after(after, timeout)
        return {"cursor": cursor, "events": found}

    return events


def add_control_routes(
    app: web.Application, *, posts: Mapping[str, Endpoint], gets: Mapping[str, Endpoint]
) -> None:
    """Register ``POST /_control/{name}`` and ``GET /_control/{path}`` (a path may have
    ``{placeholders}``), each wrapped by :func:`endpoint`."""
    for name, func in posts.items():
        app.router.add_post(f"/_control/{name}", endpoint(func))
    for path, func in gets.items():
        app.router.add_get(f"/_control/{path}", endpoint(func))
