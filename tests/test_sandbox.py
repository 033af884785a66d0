"""`gateway sandbox` as a user runs it: one command, no tokens, no Redis install."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.config import TelegramChannel, VkChannel
from gateway.sandbox.runner import VK_PATH, prepare_emulator, sandbox_settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
STAFF_CHAT = -1009000000001
VK_GROUP = 123456  # the example config's community


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


@pytest.mark.timeout(120)
async def test_sandbox_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "sandbox",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path / "data"),
        ],
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
            async with http.get(f"{base}/") as response:
                assert response.status == 200
                assert "sandbox" in (await response.text()).lower()
            async with http.get(f"{base}/console/config.json") as response:
                config = await response.json()
                assert "SANDBOX" not in str(config)  # no token reaches the browser
            bot_id = config["customer_bots"][0]["bot_id"]
            control = f"{base}/sandbox/telegram/_control"
            async with http.post(f"{control}/users", json={"first_name": "Olga"}) as response:
                olga = await response.json()
            async with http.post(
                f"{base}/console/customer_send",
                json={"bot_id": bot_id, "user_id": olga["id"], "text": "Hello from the console"},
            ) as response:
                assert response.status == 200

            def staff_copy(messages: list[dict[str, Any]]) -> Any:
                return next(
                    (m for m in messages if m.get("text") == "Hello from the console"), None
                )

            copy = await _wait_for(http, f"{control}/chats/{STAFF_CHAT}/messages", staff_copy)
            operator = config["operators"][0]["user_id"]
            async with http.post(
                f"{control}/send",
                json={
                    "user_id": operator,
                    "chat_id": STAFF_CHAT,
                    "message_thread_id": copy["message_thread_id"],
                    "text": "Hi Olga!",
                },
            ) as response:
                assert response.status == 200

            def answer(messages: list[dict[str, Any]]) -> Any:
                return next((m for m in messages if m.get("text") == "Hi Olga!"), None)

            await _wait_for(http, f"{control}/chats/{olga['id']}/messages?bot_id={bot_id}", answer)

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
            async with http.post(f"{vk}/send", json=hello) as response:
                assert response.status == 200

            def vk_copy(messages: list[dict[str, Any]]) -> Any:
                return next((m for m in messages if m.get("text") == "Привет из VK"), None)

            copy = await _wait_for(http, f"{control}/chats/{STAFF_CHAT}/messages", vk_copy)
            reply = {
                "user_id": operator,
                "chat_id": STAFF_CHAT,
                "message_thread_id": copy["message_thread_id"],
                "text": "Здравствуйте, Иван!",
            }
            async with http.post(f"{control}/send", json=reply) as response:
                assert response.status == 200

            def vk_answer(chat: dict[str, Any]) -> Any:
                return next(
                    (m for m in chat["messages"] if m["text"] == "Здравствуйте, Иван!"), None
                )

            answer_in_vk = await _wait_for(http, f"{vk}/conversations/{vk_group}/{ivan}", vk_answer)
            assert answer_in_vk["out"] == 1
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl+C
        code = process.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "sandbox.log").read_text()[-3000:]
    pidfile = tmp_path / "data" / "redis" / "redis.pid"
    assert not pidfile.exists() or not Path(f"/proc/{pidfile.read_text().strip()}").exists()


def test_sandbox_settings_point_vk_communities_at_the_emulator(tmp_path: Path) -> None:
    text = (ROOT / "bridge_config.yaml").read_text(encoding="utf-8")
    text += "    confirmation: from-the-real-community\n"  # the last channel is the VK one
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


def test_prepare_emulator_creates_the_vk_communities(tmp_path: Path) -> None:
    text = (ROOT / "bridge_config.yaml").read_text(encoding="utf-8")
    settings = sandbox_settings(text, listen="127.0.0.1:8091", data_dir=tmp_path)
    _telegram, vk, console = prepare_emulator(settings, listen="127.0.0.1:8091")
    [channel] = [c for c in settings.channels if isinstance(c, VkChannel)]
    group = vk.world.authenticate(channel.token.get_secret_value())
    assert (group.id, group.name) == (VK_GROUP, channel.title)
    assert vk.base_url == "http://127.0.0.1:8091/sandbox/vk"
    assert [u.display_name for u in vk.world.users.values()] == ["Ivan Petrov"]
    assert [(g.account, g.group_id) for g in console.vk_groups] == [("vk_shop", VK_GROUP)]
    assert console.vk_path == VK_PATH
    assert [b.account for b in console.customer_bots] == ["tg_shop"]
