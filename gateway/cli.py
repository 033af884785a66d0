"""The ``gateway`` command: run, reload, sandbox, check-config, set-webhooks, export, import."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path

import structlog
from aiohttp import web

from gateway import logging as gateway_logging
from gateway.app import App, build_adapters, tune_gc
from gateway.config import STAFF_ACCOUNT, Settings, load_config
from gateway.errors import ConfigError, GatewayError
from gateway.reload import Reloader, request_reload
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
    reloader: Reloader | None = None,
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
    listening: asyncio.Task[None] | None = None
    try:
        await gateway.go_live(public_url)
        tune_gc()
        log.info("gateway.listening", url=f"http://{host}:{port}")
        if on_ready is not None:
            await on_ready()
        if reloader is not None:  # SIGHUP or ``gateway reload``: re-read the config
            reloader.install_signal()
            listening = asyncio.create_task(reloader.listen())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        if listening is not None:
            listening.cancel()
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
    if settings.lines:
        groups = "lines " + ", ".join(f"{x.name} (group {x.chat_id})" for x in settings.lines)
    else:
        groups = f"staff group {settings.staff.chat_id}"
    print(f"{args.config}: OK — {groups}, channels: {accounts}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    gateway_logging.configure(settings.log.level, settings.log.format, settings.secrets())
    gateway = App(settings, workers=not args.no_workers)
    reloader = Reloader(gateway, args.config)
    host, port = settings.server.host, settings.server.port
    asyncio.run(serve(gateway, host=host, port=port, reloader=reloader))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Check the file here first (the errors are the same the gateway would find), then
    ask the running gateways to apply it."""
    settings = _load(args.config)
    heard = asyncio.run(request_reload(settings))
    if not heard:
        print(f"{args.config}: no running gateway is connected to its Redis", file=sys.stderr)
        return 1
    print(f"{args.config}: OK — {heard} gateway process(es) reload it; their log and the")
    print("staff group's General topic say whether they did.")
    return 0


async def set_webhooks(settings: Settings) -> tuple[bool, list[str]]:
    """Register ``server.public_url`` with every account in webhook mode (Telegram
    ``setWebhook``, the VK Callback API server); what happened, one line per account.

    A running gateway must be reachable there: VK confirms a new callback server by
    calling it at once.
    """
    public = str(settings.server.public_url or "").rstrip("/")
    staff, customers = build_adapters(settings)
    ok, lines = True, []
    for account, adapter in {STAFF_ACCOUNT: staff, **customers}.items():
        endpoint = settings.staff if account == STAFF_ACCOUNT else settings.channel(account)
        if endpoint is None or endpoint.mode != "webhook":
            lines.append(f"{account}: {endpoint.mode if endpoint else 'polling'}, no webhook")
            continue
        url = f"{public}/webhook/{adapter.channel.value}/{account}"
        try:
            await adapter.start()
            await adapter.set_webhook(url)
            lines.append(f"{account}: {url}")
        except GatewayError as exc:
            ok = False
            lines.append(f"{account}: FAILED — {exc}")
        finally:
            await adapter.stop()
    return ok, lines


def cmd_set_webhooks(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings.server.public_url is None:
        print(f"{args.config}: set server.public_url (the HTTPS address platforms post to)")
        return 2
    gateway_logging.configure(settings.log.level, "console", settings.secrets())
    ok, lines = asyncio.run(set_webhooks(settings))
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.export import export_command

    return export_command(_load(args.config), since=args.since, output=args.output)


def cmd_import(args: argparse.Namespace) -> int:
    from gateway.export import import_command

    return import_command(_load(args.config), args.path)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from gateway.sandbox.runner import run_sandbox

    config = Path(args.config) if args.config else None
    return run_sandbox(config, listen=args.listen, data_dir=Path(args.data_dir), fresh=args.fresh)


def cmd_simulate(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.simulate import Simulation

    try:  # a production config's secrets need not be set to simulate it
        settings = load_config(args.config, lenient_env=True)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    gateway_logging.configure("warning", "console", settings.secrets())  # stdout: the report
    simulation = Simulation(settings, sys.stdout, raw=args.raw, online=args.online)
    try:
        with open(args.events, encoding="utf-8") if args.events != "-" else sys.stdin as lines:
            asyncio.run(simulation.run(lines))
    except OSError as exc:
        print(f"{args.events}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway", description="Messenger gateway: customers' messengers ↔ a staff forum."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service")
    run.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    run.add_argument("--no-workers", action="store_true", help="serve webhooks only")
    run.set_defaults(func=cmd_run)

    reload = sub.add_parser(
        "reload", help="validate the config and make the running gateway apply it (SIGHUP)"
    )
    reload.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    reload.set_defaults(func=cmd_reload)

    check = sub.add_parser("check-config", help="validate a config file and list every error")
    check.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    check.set_defaults(func=cmd_check_config)

    hooks = sub.add_parser(
        "set-webhooks", help="register server.public_url with every webhook-mode account"
    )
    hooks.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    hooks.set_defaults(func=cmd_set_webhooks)

    export = sub.add_parser(
        "export", help="write contacts, processes, tasks and history as JSON lines"
    )
    export.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    export.add_argument(
        "--since",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="only processes, tasks and messages from this day on (and their contacts)",
    )
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("-o", "--output", default="-", help="a file, or - for stdout")
    export.set_defaults(func=cmd_export)

    restore = sub.add_parser("import", help="restore an export into an empty Redis")
    restore.add_argument("path", help="a file written by gateway export")
    restore.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    restore.set_defaults(func=cmd_import)

    simulate = sub.add_parser(
        "simulate",
        help="show what the config would do with some messages (no platform is called)",
    )
    simulate.add_argument("events", help="a JSON-lines file of events (- for stdin)")
    simulate.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    simulate.add_argument(
        "--raw", action="store_true", help='events carry platform payloads ("payload")'
    )
    simulate.add_argument(
        "--online", default="", help="operators online (ids, comma-separated, or all)"
    )
    simulate.set_defaults(func=cmd_simulate)

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
