"""Whole gateways inside a benchmark process: serving one, and stopping them all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiohttp import web

from gateway.app import App
from gateway.web import make_web_app


async def serve(app: App) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free loopback port; its runner and base URL."""
    runner = web.AppRunner(make_web_app(app), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def stop_all(apps: Iterable[tuple[App, web.AppRunner]]) -> None:
    """Stop every gateway (HTTP server, then workers), whatever state each is in."""
    for app, runner in apps:
        with contextlib.suppress(Exception):
            await runner.cleanup()
        with contextlib.suppress(Exception):
            await app.stop()
