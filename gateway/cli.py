"""The ``gateway`` command: run, sandbox, check-config."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from gateway import logging as gateway_logging
from gateway.app import App, freeze_startup_heap
from gateway.config import Settings, load_config
from gateway.errors import ConfigError
from gateway.web import make_web_app

log = structlog.get_logger(__name__)
DEFAULT_CONFIG = "bridge_config.yaml"


async def serve(
    gateway: App,
    *,
    host: str,
    port: int,
    app: web.Application | None = None,
    public_url: str | None = None,
    on_ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run the HTTP server and the gateway until SIGINT/SIGTERM.

    ``app`` is an application the gateway's routes are already installed on (the
    sandbox adds its console and emulators); by default a plain gateway app.
    """
    app = app if app is not None else make_web_app(gateway)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        await gateway.go_live(public_url)
        freeze_startup_heap()
        log.info("gateway.listening", url=f"http://{host}:{port}")
        if on_ready is not None:
            await on_ready()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def _load(path: str) -> Settings:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    accounts = ", ".join(c.id for c in settings.channels)
    print(f"{args.config}: OK — staff group {settings.staff.chat_id}, channels: {accounts}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    gateway_logging.configure(settings.log.level, settings.log.format, settings.secrets())
    gateway = App(settings, workers=not args.no_workers)
    asyncio.run(serve(gateway, host=settings.server.host, port=settings.server.port))
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from gateway.sandbox.runner import run_sandbox

    config = Path(args.config) if args.config else None
    return run_sandbox(config, listen=args.listen, data_dir=Path(args.data_dir), fresh=args.fresh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Messenger gateway: customers' messengers ↔ a staff forum."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service")
    run.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    run.add_argument("--no-workers", action="store_true", help="serve webhooks only")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and list every error")
    check.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    check.set_defaults(func=cmd_check_config)

    sandbox = sub.add_parser(
        "sandbox", help="run everything locally against emulators, with a web console"
    )
    sandbox.add_argument("-c", "--config", default=None, help=f"default: ./{DEFAULT_CONFIG}")
    sandbox.add_argument("--listen", default="127.0.0.1:8080")
    sandbox.add_argument("--data-dir", default=".gateway-sandbox")
    sandbox.add_argument("--fresh", action="store_true", help="start with empty data")
    sandbox.set_defaults(func=cmd_sandbox)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
