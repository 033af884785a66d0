"""Serving an emulator: on a loopback port of its own, or mounted into another app.

Tests call ``await emulator.start()`` and get the base URL of a server on a free port;
``gateway sandbox`` instead mounts ``emulator.make_app()`` as a sub-app of its one server
and tells the emulator where with :meth:`EmulatorServer.set_base_url`. Either way the
app's shutdown hooks release the emulator's long polls and stop its outgoing traffic.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from aiohttp import web

from .net import is_loopback

StopHook = Callable[[], object]
"""A function run when the emulator stops; it may return an awaitable (then awaited)."""


class EmulatorServer:
    """Base of the emulator facades: subclasses build the app and say what to release."""

    name = "emulator"
    """Used in error messages (``"VkEmulator: call start() first"``)."""

    def __init__(self) -> None:
        self.base_url: str | None = None
        """Where the emulator is reachable (no trailing slash); ``None`` until known."""
        self._runner: web.AppRunner | None = None
        self._releases: list[StopHook] = []
        self._closes: list[StopHook] = []

    def on_stop(self, *, release: StopHook | None = None, close: StopHook | None = None) -> None:
        """What stopping involves: ``release`` runs at shutdown, before connections close
        (wake long polls and console waiters); ``close`` at cleanup, after the server
        stopped (HTTP clients, background tasks). Hooks run in the order added."""
        if release is not None:
            self._releases.append(release)
        if close is not None:
            self._closes.append(close)

    def make_app(self) -> web.Application:
        """The emulator's aiohttp app (subclasses; they start from :meth:`_new_app`)."""
        raise NotImplementedError

    def _new_app(self, client_max_size: int) -> web.Application:
        """An empty app that runs the :meth:`on_stop` hooks when its server stops."""
        return self._with_hooks(web.Application(client_max_size=client_max_size))

    def _with_hooks(self, app: web.Application) -> web.Application:
        """Register :meth:`_on_shutdown` and :meth:`_on_cleanup` (which run the
        :meth:`on_stop` hooks, unless a subclass overrides them) on ``app``."""
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    def set_base_url(self, url: str) -> None:
        """The absolute URL the app is reachable at; used in every URL handed out."""
        self.base_url = url.rstrip("/")

    def _base(self) -> str:
        """:attr:`base_url`, which must be known by now."""
        if self.base_url is None:
            raise RuntimeError(f"{self.name}: call start() or set_base_url() first")
        return self.base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = a free port); returns the base URL.

        Only loopback addresses: an emulator accepts any token and must never be reachable
        from another machine."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        if not is_loopback(host):
            raise ValueError("the emulator only listens on the loopback interface")
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self.set_base_url(f"http://{host}:{runner.addresses[0][1]}")
        return self._base()

    async def stop(self) -> None:
        """Release waiters, stop outgoing traffic and the server started by start()."""
        await self._on_shutdown(None)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self._on_cleanup(None)

    async def _on_shutdown(self, _app: web.Application | None) -> None:
        await _run(self._releases)

    async def _on_cleanup(self, _app: web.Application | None) -> None:
        await _run(self._closes)


async def _run(hooks: list[StopHook]) -> None:
    for hook in hooks:
        result = hook()
        if inspect.isawaitable(result):
            await result
