"""Mounting the API under ``/api/v1``: every module's routes, the OpenAPI document, and
JSON answers for paths and methods no route has.

The API is an aiohttp sub-application, so its error middleware touches only its own
requests (the webhooks' hot path has no extra layer) and an unknown ``/api/v1/…`` path
still answers in the API's JSON shape.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from gateway.api.auth import Tokens
from gateway.api.http import fallback_middleware, handler_for
from gateway.api.openapi import PREFIX, document
from gateway.api.registry import Route, Routes
from gateway.app import App


def collect() -> list[Routes]:
    """Every ``routes = Routes(...)`` of the modules in ``gateway/api/`` (by module name,
    so the document's order is stable)."""
    package = importlib.import_module("gateway.api")
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"gateway.api.{info.name}")
        routes = getattr(module, "routes", None)
        if isinstance(routes, Routes):
            found.append(routes)
    return found


def _checked(groups: Sequence[Routes]) -> list[Route]:
    """All routes; two with one method and path, or one operation id, are a bug."""
    routes = [r for g in groups for r in g.routes]
    seen: dict[tuple[str, str] | str, Route] = {}
    for route in routes:
        for key in ((route.method, route.path), route.operation_id):
            if key in seen:
                raise RuntimeError(f"API route {key!r} is declared twice")
            seen[key] = route
    return routes


def _version() -> str:
    try:
        return version("messenger-gateway")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def install(app: web.Application, gateway: App) -> None:
    """Mount ``/api/v1`` on ``app`` for ``gateway`` (tokens from ``api.tokens``)."""
    groups = collect()
    routes = _checked(groups)
    tokens = Tokens(lambda: gateway.settings.api.tokens)  # a reloaded config's, too
    api = web.Application(middlewares=[fallback_middleware()])
    openapi = document(
        routes, version=_version(), tags=[(g.tag, g.description) for g in groups if g.routes]
    )

    async def openapi_json(_: web.Request) -> web.Response:
        return web.json_response(openapi)

    api.router.add_get("/openapi.json", openapi_json)
    for route in routes:
        api.router.add_route(route.method, route.path, handler_for(route, gateway, tokens))
    app.add_subapp(PREFIX, api)
