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

from gateway.config import TelegramChannel, ViberChannel, VkChannel
from gateway.sandbox.common.images import solid_png
from gateway.sandbox.runner import VIBER_PATH, VK_PATH, prepare_emulator, sandbox_settings
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
