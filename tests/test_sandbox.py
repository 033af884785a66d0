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

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
STAFF_CHAT = -1009000000001


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
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl+C
        code = process.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "sandbox.log").read_text()[-3000:]
    pidfile = tmp_path / "data" / "redis" / "redis.pid"
    assert not pidfile.exists() or not Path(f"/proc/{pidfile.read_text().strip()}").exists()
