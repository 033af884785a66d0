"""`gateway sandbox` as a user runs it: one command, no tokens, no Redis install."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml

from gateway.config import TelegramChannel, ViberChannel, VkChannel, WhatsAppChannel
from gateway.sandbox.common.images import solid_png
from gateway.sandbox.runner import (
    VIBER_PATH,
    VK_PATH,
    WHATSAPP_PATH,
    _config_text,
    prepare_emulator,
    sandbox_settings,
)
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
STAFF_CHAT = -1009000000001
VK_GROUP = 123456  # the example config's community
PNG_B64 = base64.b64encode(solid_png(40, 30)).decode()


async def _wait_for(http: aiohttp.ClientSession, url: str, check: Any, timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with http.get(url) as response:
            data = await response.json()
        found = check(data)
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not found at {url}: {data}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _sandbox(
    tmp_path: Path, config: Path | None = None
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """``gateway sandbox`` in a child process, as a user starts it; ``(base URL, client)``
    once it is ready. Stopped with Ctrl+C, which must exit cleanly and stop Redis."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "sandbox.log").open("wb")
    command = [sys.executable, "-m", "gateway.cli", "sandbox", "--listen", f"127.0.0.1:{port}"]
    command += ["--data-dir", str(tmp_path / "data")]
    command += ["--config", str(config)] if config is not None else []
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"{base}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert process.poll() is None, (tmp_path / "sandbox.log").read_text()
                await asyncio.sleep(0.1)
            yield base, http
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl+C
        code = process.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "sandbox.log").read_text()[-3000:]
    pidfile = tmp_path / "data" / "redis" / "redis.pid"
    assert not pidfile.exists() or not Path(f"/proc/{pidfile.read_text().strip()}").exists()


def _with(**fields: Any) -> Any:
    """A check for :func:`_wait_for`: the first item of a list (or of ``messages``) that has
    these values."""

    def check(data: Any) -> Any:
        items = data["messages"] if isinstance(data, dict) else data
        return next((m for m in items if fields.items() <= m.items()), None)

    return check


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with http.post(url, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _operator_answers(
    http: aiohttp.ClientSession, base: str, customer_text: str, **content: Any
) -> None:
    """The first operator answers in the topic where ``customer_text`` arrived."""
    control = f"{base}/sandbox/telegram/_control"
    staff = f"{control}/chats/{STAFF_CHAT}/messages"
    copy = await _wait_for(http, staff, _with(text=customer_text))
    async with http.get(f"{base}/console/config.json") as response:
        operator = (await response.json())["operators"][0]["user_id"]
    thread = {"chat_id": STAFF_CHAT, "message_thread_id": copy["message_thread_id"]}
    await _post(http, f"{control}/send", {"user_id": operator, **thread, **content})


@pytest.mark.timeout(120)
async def test_sandbox_end_to_end(tmp_path: Path) -> None:
    async with _sandbox(tmp_path) as (base, http):
        async with http.get(f"{base}/") as response:
            assert response.status == 200
            assert "sandbox" in (await response.text()).lower()
        async with http.get(f"{base}/console/config.json") as response:
            config = await response.json()
            assert "SANDBOX" not in str(config)  # no token reaches the browser
        bot_id = config["customer_bots"][0]["bot_id"]
        control = f"{base}/sandbox/telegram/_control"
        olga = await _post(http, f"{control}/users", {"first_name": "Olga"})
        hello = {"bot_id": bot_id, "user_id": olga["id"], "text": "Hello from the console"}
        await _post(http, f"{base}/console/customer_send", hello)
        await _operator_answers(http, base, "Hello from the console", text="Hi Olga!")
        olga_chat = f"{control}/chats/{olga['id']}/messages?bot_id={bot_id}"
        await _wait_for(http, olga_chat, _with(text="Hi Olga!"))

        # The same with the example config's VK community, through its emulator.
        vk_group = config["vk"]["groups"][0]["group_id"]
        vk = f"{base}{VK_PATH}/_control"

        def connected(state: dict[str, Any]) -> bool:
            servers = [s for g in state["groups"] for s in g["callback_servers"]]
            return any(s["status"] == "ok" for s in servers)

        state = await _wait_for(http, f"{vk}/state", lambda s: s if connected(s) else None)
        assert "SANDBOX" not in str(state)
        ivan = state["users"][0]["id"]  # the customer the sandbox creates
        hello = {"group_id": vk_group, "user_id": ivan, "text": "Привет из VK"}
        await _post(http, f"{vk}/send", hello)
        await _operator_answers(http, base, "Привет из VK", text="Здравствуйте, Иван!")
        ivan_chat = f"{vk}/conversations/{vk_group}/{ivan}"
        answer_in_vk = await _wait_for(http, ivan_chat, _with(text="Здравствуйте, Иван!"))
        assert answer_in_vk["out"] == 1


@pytest.mark.timeout(120)
async def test_sandbox_viber_end_to_end(tmp_path: Path) -> None:
    """The example config's Viber bot, alone (so that the staff group's sending limit is not
    the bottleneck): the welcome, a message, and a reply with a picture the emulator
    downloads from the gateway's /media like Viber does."""
    raw = yaml.safe_load((ROOT / "bridge_config.yaml").read_text(encoding="utf-8"))
    raw["channels"] = [c for c in raw["channels"] if c["kind"] == "viber"]
    path = tmp_path / "viber.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    async with _sandbox(tmp_path, path) as (base, http):
        async with http.get(f"{base}/console/config.json") as response:
            config = await response.json()
        assert "SANDBOX" not in str(config)
        viber = f"{base}{VIBER_PATH}/_control"
        state = await _wait_for(
            http, f"{viber}/state", lambda s: s if s["bots"][0]["webhook"] else None
        )
        assert "SANDBOX" not in str(state)
        olena = {"bot_id": config["viber"]["bots"][0]["bot_id"], "user_id": state["users"][0]["id"]}
        chat = f"{viber}/conversation?{urlencode(olena)}"  # Viber ids hold + and /
        await _post(http, f"{viber}/open", olena)
        welcome = await _wait_for(http, chat, _with(welcome=True))
        assert "Здравствуйте" in welcome["text"]
        await _post(http, f"{viber}/send", {**olena, "text": "Привет из Viber"})
        order = {"name": "order.png", "mime_type": "image/png", "content_b64": PNG_B64}
        await _operator_answers(
            http, base, "Привет из Viber", caption="Ваш заказ", kind="photo", file=order
        )
        picture = await _wait_for(http, chat, _with(type="picture", status="delivered"))
        assert picture["media"].startswith(f"{base}/media/")  # the gateway's signed URL
        async with http.get(picture["local_url"]) as response:
            assert base64.b64encode(await response.read()).decode() == PNG_B64


@pytest.mark.timeout(120)
async def test_sandbox_whatsapp_end_to_end(tmp_path: Path) -> None:
    """The example config's WhatsApp number, alone (the staff group's sending limit): the
    gateway subscribes itself, a customer writes, an operator answers, the customer reads it;
    after WhatsApp's clock moves 25 hours the free-form answer is refused (131047) and shows
    as not delivered in the topic, while the configured template goes through."""
    raw = yaml.safe_load((ROOT / "bridge_config.yaml").read_text(encoding="utf-8"))
    raw["channels"] = [c for c in raw["channels"] if c["kind"] == "whatsapp"]
    path = tmp_path / "whatsapp.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    async with _sandbox(tmp_path, path) as (base, http):
        async with http.get(f"{base}/console/config.json") as response:
            config = await response.json()
        assert "SANDBOX" not in str(config)
        [number] = config["whatsapp"]["numbers"]
        assert number == {
            "account": "wa_shop",
            "phone_number_id": "106540352242922",
            "name": "Shop in WhatsApp",
        }
        wa = f"{base}{WHATSAPP_PATH}/_control"
        state = await _wait_for(
            http, f"{wa}/state", lambda s: s if s["numbers"][0]["webhook"] else None
        )
        assert state["numbers"][0]["webhook"] == f"{base}/webhook/whatsapp/wa_shop"
        assert "SANDBOX" not in str(state)
        assert [t["name"] for t in state["templates"]] == ["order_ready"]
        maria = {"phone_number_id": number["phone_number_id"], "wa_id": state["users"][0]["wa_id"]}
        chat = f"{wa}/conversations/{maria['phone_number_id']}/{maria['wa_id']}"
        await _post(http, f"{wa}/send", {**maria, "text": "Привет из WhatsApp"})
        await _operator_answers(http, base, "Привет из WhatsApp", text="Здравствуйте, Мария!")
        answer = await _wait_for(
            http, chat, _with(direction="out", body="Здравствуйте, Мария!", status="delivered")
        )
        await _post(http, f"{wa}/read", {**maria, "message_id": answer["id"]})
        await _wait_for(http, chat, _with(id=answer["id"], status="read"))

        # WhatsApp's clock moves on; the gateway's does not, so WhatsApp itself refuses.
        await _post(http, f"{wa}/advance", {"seconds": 25 * 3600})
        async with http.get(chat) as response:
            assert (await response.json())["window_open"] is False
        control = f"{base}/sandbox/telegram/_control"
        staff = f"{control}/chats/{STAFF_CHAT}/messages"
        copy = await _wait_for(http, staff, _with(text="Привет из WhatsApp"))
        operator = config["operators"][0]["user_id"]
        thread = {"chat_id": STAFF_CHAT, "message_thread_id": copy["message_thread_id"]}
        await _post(http, f"{control}/send", {"user_id": operator, **thread, "text": "Вы тут?"})

        def refused(messages: list[dict[str, Any]]) -> Any:
            return next((m for m in messages if "Not delivered" in m.get("text", "")), None)

        # the gateway paces the staff group (20 messages a minute): the notice queues a while
        notice = await _wait_for(http, staff, refused, timeout=70)
        assert "24 hours" in notice["text"] and "template" in notice["text"]
        template = '/template order_ready Мария "№ 48213"'
        await _post(http, f"{control}/send", {"user_id": operator, **thread, "text": template})
        sent = await _wait_for(http, chat, _with(direction="out", type="template"))
        assert sent["template"]["params"] == ["Мария", "№ 48213"]
        assert "Мария" in sent["body"] and "№ 48213" in sent["body"]


def _example_config(**vk_extra: Any) -> str:
    raw = yaml.safe_load((ROOT / "bridge_config.yaml").read_text(encoding="utf-8"))
    [vk] = [c for c in raw["channels"] if c["kind"] == "vk"]
    vk.update(vk_extra)
    return yaml.safe_dump(raw, allow_unicode=True)


def test_sandbox_settings_point_vk_communities_at_the_emulator(tmp_path: Path) -> None:
    text = _example_config(confirmation="from-the-real-community")
    settings = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    [telegram] = [c for c in settings.channels if isinstance(c, TelegramChannel)]
    [vk] = [c for c in settings.channels if isinstance(c, VkChannel)]
    assert str(telegram.api_server).startswith("http://127.0.0.1:8091/sandbox/telegram")
    assert (vk.id, vk.group_id, vk.mode) == ("vk_shop", VK_GROUP, "webhook")
    assert str(vk.api_server).rstrip("/") == "http://127.0.0.1:8091/sandbox/vk"
    assert vk.token.get_secret_value().startswith("vk1.a.SANDBOX")
    assert vk.secret is not None and len(vk.secret.get_secret_value()) >= 16
    assert vk.confirmation is None  # the adapter asks the emulator for the code
    again = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    [vk_again] = [c for c in again.channels if isinstance(c, VkChannel)]
    assert vk_again.secret != vk.secret  # a fresh secret per run


def test_sandbox_settings_point_viber_bots_at_the_emulator(tmp_path: Path) -> None:
    settings = sandbox_settings(_example_config(), listen="127.0.0.1:8091", data_dir=tmp_path)
    [viber] = [c for c in settings.channels if isinstance(c, ViberChannel)]
    assert (viber.id, viber.name, viber.mode) == ("viber_shop", "Shop", "webhook")
    assert str(viber.api_server).rstrip("/") == "http://127.0.0.1:8091/sandbox/viber"
    assert viber.token.get_secret_value().startswith("SANDBOX-viber-")
    # the gateway registers webhooks and serves Viber's media at the sandbox's own address
    assert str(settings.server.public_url).rstrip("/") == "http://127.0.0.1:8091"


def test_prepare_emulator_creates_the_accounts(tmp_path: Path) -> None:
    text = (ROOT / "bridge_config.yaml").read_text(encoding="utf-8")
    settings = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    emulators = prepare_emulator(settings, listen="127.0.0.1:8091")
    vk, viber, console = emulators.vk, emulators.viber, emulators.console
    [channel] = [c for c in settings.channels if isinstance(c, VkChannel)]
    group = vk.world.authenticate(channel.token.get_secret_value())
    assert (group.id, group.name) == (VK_GROUP, channel.title)
    assert vk.base_url == "http://127.0.0.1:8091/sandbox/vk"
    assert [u.display_name for u in vk.world.users.values()] == ["Ivan Petrov"]
    assert [(g.account, g.group_id) for g in console.vk_groups] == [("vk_shop", VK_GROUP)]
    assert console.vk_path == VK_PATH
    assert [b.account for b in console.customer_bots] == ["tg_shop"]
    [bot] = [c for c in settings.channels if isinstance(c, ViberChannel)]
    token = bot.token.get_secret_value()
    assert viber.world.bot(token).name == "Shop"
    assert viber.base_url == f"http://127.0.0.1:8091{VIBER_PATH}"
    assert [(b.account, b.bot_id) for b in console.viber_bots] == [
        ("viber_shop", viber.bot_id(token))
    ]
    assert token not in repr(console) and console.viber_path == VIBER_PATH
    assert [u.name for u in viber.world.users.values()] == ["Olena Kovalenko"]


def test_sandbox_settings_point_whatsapp_numbers_at_the_emulator(tmp_path: Path) -> None:
    text = _example_config()
    settings = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    [wa] = [c for c in settings.channels if isinstance(c, WhatsAppChannel)]
    assert (wa.id, wa.phone_number_id, wa.mode) == ("wa_shop", "106540352242922", "webhook")
    assert str(wa.api_server).rstrip("/") == "http://127.0.0.1:8091/sandbox/whatsapp"
    assert wa.token.get_secret_value().startswith("SANDBOX-whatsapp-")
    assert len(wa.app_secret.get_secret_value()) >= 16
    assert len(wa.verify_token.get_secret_value()) >= 16
    assert [t.name for t in wa.templates] == ["order_ready"]  # kept from the config
    again = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    [wa_again] = [c for c in again.channels if isinstance(c, WhatsAppChannel)]
    assert wa_again.app_secret != wa.app_secret  # fresh secrets per run
    assert wa_again.verify_token != wa.verify_token


def test_prepare_emulator_creates_whatsapp_numbers_and_templates(tmp_path: Path) -> None:
    raw = yaml.safe_load(_example_config())
    [wa_raw] = [c for c in raw["channels"] if c["kind"] == "whatsapp"]
    # a second number whose template has no text: the emulator still expects 2 parameters
    raw["channels"].append(
        {
            **wa_raw,
            "id": "wa_cafe",
            "title": None,
            "phone_number_id": "106540352242923",
            "templates": [{"name": "table_ready", "language": "en_US", "parameters": 2}],
        }
    )
    text = yaml.safe_dump(raw, allow_unicode=True)
    settings = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    emulators = prepare_emulator(settings, listen="127.0.0.1:8091")
    whatsapp, console = emulators.whatsapp, emulators.console
    assert whatsapp.base_url == f"http://127.0.0.1:8091{WHATSAPP_PATH}"
    shop, cafe = [c for c in settings.channels if isinstance(c, WhatsAppChannel)]
    for channel in (shop, cafe):
        number = whatsapp.world.authenticate(
            channel.token.get_secret_value(), channel.phone_number_id
        )
        assert number.app_secret == channel.app_secret.get_secret_value()  # signs its webhooks
        assert number.subscription is None  # the gateway subscribes itself on start
    assert whatsapp.world.number(shop.phone_number_id).verified_name == "Shop in WhatsApp"
    order = whatsapp.world.template("order_ready", "ru")
    assert shop.templates[0].text == order.body and order.param_count == 2
    assert whatsapp.world.template("table_ready", "en_US").param_count == 2
    assert [u.name for u in whatsapp.world.users.values()] == ["Maria Sokolova"]
    assert console.whatsapp_path == WHATSAPP_PATH
    assert [(n.account, n.phone_number_id, n.name) for n in console.whatsapp_numbers] == [
        ("wa_shop", "106540352242922", "Shop in WhatsApp"),
        ("wa_cafe", "106540352242923", "wa_cafe"),
    ]
    for channel in (shop, cafe):
        assert channel.token.get_secret_value() not in repr(console)
        assert channel.app_secret.get_secret_value() not in repr(console)


def test_prepare_emulator_without_whatsapp_has_no_customer(tmp_path: Path) -> None:
    raw = yaml.safe_load(_example_config())
    raw["channels"] = [c for c in raw["channels"] if c["kind"] != "whatsapp"]
    text = yaml.safe_dump(raw, allow_unicode=True)
    settings = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    emulators = prepare_emulator(settings, listen="127.0.0.1:8091")
    assert emulators.console.whatsapp_numbers == ()
    assert not emulators.whatsapp.world.users and not emulators.whatsapp.world.numbers


def test_the_sandbox_makes_a_dashboard_token_unless_the_config_has_tokens(tmp_path: Path) -> None:
    text = (Path(__file__).parent.parent / "bridge_config.yaml").read_text(encoding="utf-8")
    settings = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    (token,) = settings.api.tokens
    assert token.name == "sandbox" and set(token.scopes) == {"read", "write", "admin"}
    assert len(token.token.get_secret_value()) >= 24
    assert token.token.get_secret_value() in settings.secrets()  # redacted from logs

    own = {"tokens": [{"name": "crm", "token": "t" * 12 + "0123456789ab", "scopes": ["read"]}]}
    mine = yaml.safe_dump({"api": own})
    settings = sandbox_settings(text + "\n" + mine, listen="127.0.0.1:8091", data_dir=tmp_path)
    assert [t.name for t in settings.api.tokens] == ["crm"]


def test_the_sandbox_finds_its_example_config_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `gateway sandbox` run outside the repository, with the editable install the
    # README's first command makes: the package has no copy of the example config.
    monkeypatch.chdir(tmp_path)
    expected = (ROOT / "bridge_config.yaml").read_text(encoding="utf-8")
    assert _config_text(None) == expected
    (tmp_path / "bridge_config.yaml").write_text("log:\n  level: debug\n", encoding="utf-8")
    assert _config_text(None) == "log:\n  level: debug\n"  # the local one wins
