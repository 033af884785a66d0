"""``gateway sandbox``: the real service, wired to the built-in emulators.

Everything runs in one process on one port: the gateway's own routes (webhooks,
health, metrics, ``/media``), the Telegram Bot API emulator under ``/sandbox/telegram``,
the VK API emulator under ``/sandbox/vk``, the Viber REST API emulator under
``/sandbox/viber``, the WhatsApp Cloud API emulator under ``/sandbox/whatsapp`` and the
web console at ``/``. The config file's accounts are kept
(their ids, names, operators, limits, VK community ids) while every token, webhook
secret and API address is replaced by a sandbox value, so no token, no internet and no
Redis install are needed. ``server.public_url`` becomes the sandbox's own address: the
gateway registers its webhooks there, and Viber bots' files are served from there
(the Viber emulator downloads them like Viber does). VK communities use the Callback
API: the gateway registers itself with the emulator and asks it for the confirmation
code. WhatsApp numbers get their webhook the same way (``webhook_configuration``, which
the emulator verifies with Meta's ``hub.challenge``) and their webhooks are signed with
the number's sandbox app secret; the configured templates exist, approved, in the
emulator.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import structlog
import yaml

from gateway import logging as gateway_logging
from gateway.app import App
from gateway.config import Settings, parse_config
from gateway.errors import ConfigError
from gateway.sandbox.console import (
    ConsoleBot,
    ConsoleOperator,
    ConsoleSettings,
    ConsoleViberBot,
    ConsoleVkGroup,
    ConsoleWhatsAppNumber,
    make_console_app,
)
from gateway.sandbox.telegram import TelegramEmulator
from gateway.sandbox.viber import ViberEmulator
from gateway.sandbox.vk import VkEmulator
from gateway.sandbox.whatsapp import WhatsAppEmulator
from gateway.web import install

log = structlog.get_logger(__name__)
EMULATOR_PATH = "/sandbox/telegram"
VK_PATH = "/sandbox/vk"
VK_CUSTOMER = ("Ivan", "Petrov")
"""A VK customer who exists from the start, so the console's VK tab is ready to write."""
VIBER_PATH = "/sandbox/viber"
VIBER_CUSTOMER = "Olena Kovalenko"
"""A Viber customer who exists from the start, for the console's Viber tab."""
VIBER_RECEIPT_DELAY = 0.5
"""Seconds before a Viber message shows as delivered (a phone is not instant)."""
WHATSAPP_PATH = "/sandbox/whatsapp"
WHATSAPP_CUSTOMER = ("Maria Sokolova", "79161234567")
"""A WhatsApp customer (name, ``wa_id``) who exists from the start, for the WhatsApp tab."""
STAFF_CHAT = -1009000000001
STAFF_TOKEN = "9000000001:SANDBOX-staff"  # noqa: S105 - a fake token the emulator accepts


def sandbox_settings(text: str, *, listen: str, data_dir: Path) -> Settings:
    """The config ``text`` with every remote address and secret pointed at the sandbox."""
    raw = yaml.safe_load(text) or {}
    base = f"http://{listen}{EMULATOR_PATH}"
    secret = secrets.token_urlsafe(24)
    overrides: dict[str, Any] = {
        "redis.url": None,
        "data_dir": str(data_dir),
        "server.listen": listen,
        # Where the gateway registers webhooks and serves Viber's media: this server.
        "server.public_url": f"http://{listen}",
        "staff.token": STAFF_TOKEN,
        "staff.chat_id": STAFF_CHAT,
        "staff.api_server": base,
        "staff.mode": "webhook",
        "staff.webhook_secret": secret,
    }
    for i, channel in enumerate(raw.get("channels") or []):
        kind = channel.get("kind") if isinstance(channel, dict) else None
        if kind == "viber":
            overrides |= {
                f"channels.{i}.token": f"SANDBOX-viber-{i}-{secrets.token_hex(12)}",
                f"channels.{i}.api_server": f"http://{listen}{VIBER_PATH}",
                f"channels.{i}.mode": "webhook",
            }
            continue
        if kind == "whatsapp":
            # The adapter registers its webhook itself (webhook_configuration) at start.
            overrides |= {
                f"channels.{i}.token": f"SANDBOX-whatsapp-{i}-{secrets.token_hex(12)}",
                f"channels.{i}.api_server": f"http://{listen}{WHATSAPP_PATH}",
                f"channels.{i}.mode": "webhook",
                f"channels.{i}.app_secret": secrets.token_hex(16),
                f"channels.{i}.verify_token": secrets.token_urlsafe(16),
            }
            continue
        if kind == "vk":
            overrides |= {
                f"channels.{i}.token": f"vk1.a.SANDBOX-community-{i}",
                f"channels.{i}.api_server": f"http://{listen}{VK_PATH}",
                f"channels.{i}.mode": "webhook",
                f"channels.{i}.secret": secrets.token_hex(16),
                # Unset: the adapter asks the emulator (groups.getCallbackConfirmationCode).
                f"channels.{i}.confirmation": None,
            }
            continue
        if kind not in (None, "telegram"):
            continue  # a messenger the sandbox has no emulator for: left as configured
        overrides |= {
            f"channels.{i}.token": f"{9100000000 + i}:SANDBOX-customer-{i}",
            f"channels.{i}.api_server": base,
            f"channels.{i}.mode": "webhook",
            f"channels.{i}.webhook_secret": secret,
        }
    if not (raw.get("api") or {}).get("tokens"):
        # A token for the dashboard and the API, printed at start (only this sandbox knows it).
        token = secrets.token_urlsafe(24)
        scopes = ["read", "write", "admin"]
        overrides["api.tokens"] = [{"name": "sandbox", "token": token, "scopes": scopes}]
    return parse_config(text, overrides=overrides, lenient_env=True)


def _config_text(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8")
    local = Path("bridge_config.yaml")
    if local.is_file():
        return local.read_text(encoding="utf-8")
    # Installed from a wheel: the example config ships inside the package. An editable
    # install (`pip install -e .`) has no copy there; it reads the repository's own.
    packaged = resources.files("gateway.sandbox").joinpath("bridge_config.yaml")
    if packaged.is_file():
        return packaged.read_text("utf-8")
    return (Path(__file__).resolve().parents[2] / "bridge_config.yaml").read_text("utf-8")


class Emulators(NamedTuple):
    """The sandbox's emulators and what its console shows."""

    telegram: TelegramEmulator
    vk: VkEmulator
    viber: ViberEmulator
    whatsapp: WhatsAppEmulator
    console: ConsoleSettings


def prepare_emulator(settings: Settings, *, listen: str) -> Emulators:
    """The emulators with the config's accounts, people and groups, and what the console
    shows. ``listen`` is where the sandbox serves (the VK and Viber emulators hand out
    absolute URLs under ``http://{listen}/sandbox/...``)."""
    emulator = TelegramEmulator()
    staff_token = settings.staff.token.get_secret_value()
    emulator.set_bot_username(staff_token, "staff_bot")
    operators = settings.staff.operators
    people = [(o.id, o.name) for o in operators] if operators else [(100200300, "Operator")]
    for user_id, name in people:
        emulator.create_user(first_name=name, user_id=user_id)
    emulator.create_forum_group(
        title="Staff",
        members=[user_id for user_id, _ in people],
        bot_tokens=[staff_token],
        chat_id=settings.staff.chat_id,
    )
    vk = VkEmulator()
    vk.set_base_url(f"http://{listen}{VK_PATH}")
    viber = ViberEmulator(receipt_delay=VIBER_RECEIPT_DELAY)
    viber.set_base_url(f"http://{listen}{VIBER_PATH}")
    whatsapp = WhatsAppEmulator()
    whatsapp.set_base_url(f"http://{listen}{WHATSAPP_PATH}")
    bots, communities, viber_bots, numbers = [], [], [], []
    for channel in settings.channels:
        if channel.kind == "vk":
            name = channel.title or channel.id
            vk.create_group(channel.group_id, channel.token.get_secret_value(), name)
            communities.append(ConsoleVkGroup(channel.id, channel.group_id, name))
        elif channel.kind == "viber":
            token = channel.token.get_secret_value()
            avatar = str(channel.avatar) if channel.avatar else None
            viber.create_bot(token, channel.name, avatar=avatar)
            viber_bots.append(ConsoleViberBot(channel.id, viber.bot_id(token), channel.name))
        elif channel.kind == "whatsapp":
            name = channel.title or channel.id
            whatsapp.create_number(
                channel.phone_number_id,
                _display_number(channel.phone_number_id),
                channel.token.get_secret_value(),
                verified_name=name,
                app_secret=channel.app_secret.get_secret_value(),
            )
            for template in channel.templates:
                body = template.text or _template_body(template.name, template.parameters)
                whatsapp.create_template(template.name, template.language, body)
            numbers.append(ConsoleWhatsAppNumber(channel.id, channel.phone_number_id, name))
        elif channel.kind == "telegram":
            token = channel.token.get_secret_value()
            username = f"{channel.id}_bot"
            emulator.set_bot_username(token, username)
            bots.append(ConsoleBot(channel.id, int(token.split(":")[0]), username, token))
    if communities:
        vk.create_user(*VK_CUSTOMER, screen_name="ivan_petrov")
    if viber_bots:
        viber.create_user(VIBER_CUSTOMER, country="UA", language="uk")
    if numbers:
        whatsapp.create_user(*WHATSAPP_CUSTOMER)
    console = ConsoleSettings(
        emulator_path=EMULATOR_PATH,
        customer_bots=tuple(bots),
        staff_chat_id=settings.staff.chat_id,
        operators=tuple(ConsoleOperator(user_id, name) for user_id, name in people),
        vk_path=VK_PATH,
        vk_groups=tuple(communities),
        viber_path=VIBER_PATH,
        viber_bots=tuple(viber_bots),
        whatsapp_path=WHATSAPP_PATH,
        whatsapp_numbers=tuple(numbers),
        websites=tuple(c.id for c in settings.channels if c.kind == "webchat"),
    )
    return Emulators(emulator, vk, viber, whatsapp, console)


def _display_number(phone_number_id: str) -> str:
    """A made-up display number for a phone number id (+1 555 … like Meta's test numbers)."""
    return f"+1555{phone_number_id[-7:].rjust(7, '0')}"


def _template_body(name: str, parameters: int) -> str:
    """A body for a template configured without ``text``: its name and ``parameters``
    placeholders, so the emulator expects as many parameters as the config says."""
    placeholders = ", ".join(f"{{{{{n}}}}}" for n in range(1, parameters + 1))
    return f"{name}: {placeholders}" if placeholders else name


def run_sandbox(config: Path | None, *, listen: str, data_dir: Path, fresh: bool) -> int:
    from gateway.cli import serve

    try:
        settings = sandbox_settings(_config_text(config), listen=listen, data_dir=data_dir)
    except ConfigError as exc:
        print(f"sandbox: {exc}")
        return 2
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    gateway_logging.configure(settings.log.level, "console", settings.secrets())
    emulators = prepare_emulator(settings, listen=listen)
    gateway = App(settings)
    app = make_console_app(emulators.console)
    install(app, gateway)
    app.add_subapp(EMULATOR_PATH, emulators.telegram.make_app())
    app.add_subapp(VK_PATH, emulators.vk.make_app())
    app.add_subapp(VIBER_PATH, emulators.viber.make_app())
    app.add_subapp(WHATSAPP_PATH, emulators.whatsapp.make_app())
    url = f"http://{listen}"

    sandbox_token = next((t for t in settings.api.tokens if t.name == "sandbox"), None)

    async def announce() -> None:
        lines = [f"Sandbox ready: open {url}/ in a browser (Ctrl+C to stop)."]
        if sandbox_token is not None:
            token = sandbox_token.token.get_secret_value()
            lines.append(f"Admin dashboard: {url}/admin · API: {url}/api/v1 · token: {token}")
        print("\n" + "\n".join(f"  {line}" for line in lines) + "\n", flush=True)

    # The emulators are sub-applications: their own shutdown hooks stop them with the server.
    asyncio.run(
        serve(
            gateway,
            host=settings.server.host,
            port=settings.server.port,
            app=app,
            public_url=url,
            on_ready=announce,
        )
    )
    return 0
