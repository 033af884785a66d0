"""What the Viber emulator's tests share: a bot's server, a viberbot-like client, fixtures.

viberbot POSTs ``json.dumps(payload)`` to ``{base}/{endpoint}`` with ``auth_token`` inside
the body and no content type; :class:`Api` does exactly that with aiohttp.
:class:`Webhook` plays the bot's server: it checks the signature of every callback (a
wrong one fails the test at teardown) and serves the bot's media. Test modules import
the fixtures they use from here.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from gateway.sandbox.common.images import solid_png
from gateway.sandbox.viber import SIGNATURE_HEADER, ViberEmulator, sign

TOKEN = "4453b6ac12345678-e02c5f12174805f9-daec9cbb5448c51f"
OTHER = "4453b6ac87654321-aaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb"
PNG = solid_png(64, 48)
SENDER = {"name": "Shop", "avatar": "http://127.0.0.1/avatar.jpg"}


class Webhook:
    """The bot's server: records callbacks (checking signatures), answers them as told,
    serves media under ``/media/{name}``."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.answers: dict[str, list[tuple[int, str]]] = {}
        self.media: dict[str, bytes] = {"photo.png": PNG, "doc.pdf": b"%PDF-1.4 fake"}
        self.stalled = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.base = ""

    def answer(self, event: str, *answers: tuple[int, str]) -> None:
        """Answer the next callbacks of ``event`` with these ``(status, body)``."""
        self.answers.setdefault(event, []).extend(answers)

    async def receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if request.headers.get(SIGNATURE_HEADER) != sign(self.token, raw):
            self.bad_signatures += 1
        assert request.content_type == "application/json"
        body = json.loads(raw)
        body["_raw"] = raw.decode()
        body["_signature"] = request.headers.get(SIGNATURE_HEADER)
        self.received.append(body)
        queued = self.answers.get(body["event"])
        status, text = queued.pop(0) if queued else (200, "")
        return web.Response(status=status, text=text)

    async def serve_media(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "slow.png":
            await self.stalled.wait()
        if name not in self.media:
            return web.Response(status=404, text="no such file")
        return web.Response(body=self.media[name], content_type="application/octet-stream")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/webhook/viber/shop", self.receive)
        app.router.add_get("/media/{name}", self.serve_media)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return f"{self.base}/webhook/viber/shop"

    def events(self, name: str) -> list[dict[str, Any]]:
        return [body for body in self.received if body["event"] == name]


class Api:
    """POSTs like viberbot: a JSON string body with ``auth_token``, no content type."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str = TOKEN) -> None:
        self.http, self.base, self.token = http, base, token

    async def raw(self, endpoint: str, **body: Any) -> tuple[int, str]:
        payload = json.dumps({"auth_token": self.token, **body})
        async with self.http.post(f"{self.base}/{endpoint}", data=payload) as response:
            return response.status, await response.text()

    async def __call__(self, endpoint: str, **body: Any) -> dict[str, Any]:
        status, text = await self.raw(endpoint, **body)
        assert status == 200, text
        answer: dict[str, Any] = json.loads(text)
        return answer

    async def ok(self, endpoint: str, **body: Any) -> dict[str, Any]:
        answer = await self(endpoint, **body)
        assert (answer["status"], answer["status_message"]) == (0, "ok"), answer
        return answer

    async def send(self, receiver: str, **message: Any) -> dict[str, Any]:
        return await self("send_message", receiver=receiver, sender=SENDER, **message)


async def connected(viber_api: Api, bot_server: Webhook, **extra: Any) -> str:
    url = await bot_server.start()
    await viber_api.ok("set_webhook", url=url, send_name=True, send_photo=True, **extra)
    return url


async def subscriber(viber: ViberEmulator, name: str = "Olga") -> str:
    user_id = viber.create_user(name, avatar=PNG)
    viber.user_send(TOKEN, user_id, "Hello")
    await viber.callbacks_idle()
    return user_id
