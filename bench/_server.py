"""The processes of :mod:`bench.ingest` other than itself: servers under test, breakdown.

They are ``multiprocessing`` children made by a *forkserver* that preloads this module,
so aiogram & co. (seconds of imports) are imported once and every child starts warm and
clean (no event loop, no sockets of the benchmark). A child is spawned early, waits for
one command on its pipe, then:

- ``{"mode": "bare"}``: an aiohttp app whose webhook route reads the body and answers 200;
- ``{"mode": "gateway", "config": "<YAML>", "workers": false, "register_webhooks": false,
  "profile": null}``: the real gateway app (:func:`gateway.web.make_web_app`), workers
  disabled unless ``workers`` (so only ingest runs); ``register_webhooks`` calls
  setWebhook on the configured Bot API server (the emulator); ``profile`` writes cProfile
  stats of the serving phase to that path; ``gc_freeze`` (a what-if, off by default)
  gives a bare server the gateway's collector set-up (:func:`gateway.app.tune_gc`);
- ``{"mode": "breakdown", "redis_url": URL, "n": N}``: runs :mod:`bench._breakdown`.

A server listens on a free port of 127.0.0.1, answers ``{"port": N, "pid": N}`` once it
serves, and stops at the next message on its pipe (answering with what it saw of
garbage collection while serving: ``{"gc": {...}}``) or when the pipe closes (the
benchmark died). Its stdout and stderr (the gateway's JSON logs) go to a log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import os
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from aiohttp import web

import adapters.telegram  # noqa: F401 - aiogram: the slow import, preloaded by the forkserver
import bench._breakdown
from gateway import logging as gateway_logging
from gateway.app import App, tune_gc
from gateway.config import parse_config
from gateway.web import make_web_app

HOST = "127.0.0.1"


def child_main(conn: Connection, log_path: str) -> None:
    """The ``multiprocessing.Process`` target."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        command: dict[str, Any] = conn.recv()
    except EOFError:
        return  # not needed after all
    if command["mode"] == "breakdown":
        steps = asyncio.run(bench._breakdown.measure(command["redis_url"], int(command["n"])))
        conn.send({"steps": steps})
        return
    asyncio.run(serve(command, conn))
    sys.stdout.flush()


async def _bare_webhook(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"ok": True})


def bare_app() -> web.Application:
    """The baseline: same route shape and body handling, nothing behind it."""
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/webhook/{channel}/{account}", _bare_webhook)
    return app


class GcWatch:
    """Collections and their pauses while serving (a full collection of a process that
    imported aiogram walks a quarter of a million objects)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.counts = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest: list[tuple[float, float, int]] = []  # (ms, at s, generation)
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._t = now
            return
        generation = int(info["generation"])
        pause = now - self._t
        self.counts[generation] += 1
        self.seconds[generation] += pause
        self.longest = sorted(
            [*self.longest, (1000 * pause, now - self.started, generation)], reverse=True
        )[:5]

    def summary(self) -> dict[str, Any]:
        return {
            "collections": self.counts,
            "total_ms": [round(1000 * s, 1) for s in self.seconds],
            "longest": [(round(ms, 1), round(at, 2), g) for ms, at, g in self.longest],
            "tracked_objects": len(gc.get_objects()),
        }


async def serve(command: dict[str, Any], conn: Connection) -> None:
    gateway = None
    if command["mode"] == "gateway":
        settings = parse_config(command["config"])
        # As `gateway run` does: JSON logs at the configured level (to the log file).
        gateway_logging.configure(settings.log.level, settings.log.format, settings.secrets())
        gateway = App(settings, workers=bool(command.get("workers")))
        app = make_web_app(gateway)
    else:
        app = bare_app()

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = int(runner.addresses[0][1])
    profile: str | None = command.get("profile")
    profiler = cProfile.Profile() if profile is not None else None
    loop = asyncio.get_running_loop()
    try:
        if gateway is not None:
            url = f"http://{HOST}:{port}"
            await gateway.go_live(url if command.get("register_webhooks") else None)
            tune_gc()  # as `gateway run` does once live
        if command.get("gc_freeze"):
            tune_gc()  # what-if: the bare server gets the gateway's collector set-up too
        stop = asyncio.Event()
        loop.add_reader(conn.fileno(), stop.set)  # any message, or EOF: stop
        watch = GcWatch()
        gc.callbacks.append(watch)
        if profiler is not None:
            profiler.enable()
        conn.send({"port": port, "pid": os.getpid()})
        await stop.wait()
        gc.callbacks.remove(watch)
        with contextlib.suppress(EOFError, OSError):
            conn.recv()  # the stop message (EOF if the benchmark died)
            conn.send({"gc": watch.summary()})
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        loop.remove_reader(conn.fileno())
        await runner.cleanup()
