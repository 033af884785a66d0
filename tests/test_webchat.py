"""The website chat (issue 11) over its real protocol, with aiohttp's client as the
widget: sessions, WebSocket and long polling, acks and resends, reconnect and resume,
files both ways, the form joining a visitor to their WhatsApp contact, signed site
identities, and every kind of bad request refused with a clear answer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from gateway.sandbox.whatsapp import WhatsAppEmulator
from tests.conftest import Clock, Running, StartGateway, World, eventually, text_of
from tests.test_whatsapp_flow import NUMBER, wa, with_wa

__all__ = ["wa"]  # a fixture of the WhatsApp tests, used here too
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
IDENTITY_SECRET = "site-shared-identity-secret"


def with_site(**extra: Any) -> Callable[[dict[str, Any]], None]:
    def tweak(data: dict[str, Any]) -> None:
        data["channels"].append(
            {
                "id": "site",
                "kind": "webchat",
                "origins": ["https://shop.example"],
                "identity_secret": IDENTITY_SECRET,
                "form": {"fields": ["name", "phone", "email"]},
                **extra,
            }
        )

    return tweak


class Widget:
    """What the widget does, over HTTP and a WebSocket."""

    def __init__(self, http: aiohttp.ClientSession, url: str, origin: str = "https://shop.example"):
        self.http = http
        self.root = f"{url}/webchat/site"
        self.origin = origin
        self.token: str | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.events: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None

    def headers(self) -> dict[str, str]:
        found = {"Origin": self.origin}
        if self.token:
            found["Authorization"] = f"Bearer {self.token}"
        return found

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(
            method, self.root + path, headers=self.headers(), **kwargs
        ) as response:
            return response.status, await response.json()

    async def session(self, **body: Any) -> dict[str, Any]:
        status, answer = await self.call("POST", "/session", json={"token": self.token, **body})
        assert status == 200, answer
        self.token = answer["token"]
        return dict(answer)

    async def connect(self, since: str | None = None) -> None:
        self.ws = await self.http.ws_connect(self.root + "/ws", headers={"Origin": self.origin})
        await self.ws.send_json({"type": "hello", "token": self.token, "since": since})
        self._reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            data = message.json()
            if data["type"] == "events":
                self.events += data["events"]
            else:
                self.answers.append(data)

    async def disconnect(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader

    async def say(self, text: str, cid: str, **extra: Any) -> dict[str, Any]:
        assert self.ws is not None
        await self.ws.send_json({"type": "message", "cid": cid, "text": text, **extra})
        return await self.answer(cid)

    async def answer(self, cid: str) -> dict[str, Any]:
        for _ in range(500):
            found = [a for a in self.answers if a.get("cid") == cid]
            if found:
                self.answers.remove(found[0])
                return found[0]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no answer for {cid}")

    def replies(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == "msg" and e["dir"] == "out"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def visitor(
    http: aiohttp.ClientSession, running: Running, name: str, *, connect: bool = True
) -> Widget:
    """A new visitor who filled the form with ``name`` (and opened the socket)."""
    widget = Widget(http, running.url)
    await widget.session(form={"name": name})
    if connect:
        await widget.connect()
    return widget


async def site(start_gateway: StartGateway, *tweaks: Callable[[dict[str, Any]], None]) -> Running:
    def tweak(data: dict[str, Any]) -> None:
        for each in (with_site(), *tweaks):
            each(data)

    return await start_gateway(tweak=tweak)


async def test_a_visitor_chats_with_an_operator_over_the_websocket(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    running = await site(start_gateway)
    widget = Widget(http, running.url)
    status, config = await widget.call("GET", "/config")
    assert (
        status == 200
        and config["online"]
        and config["form"]["fields"] == ["name", "phone", "email"]
    )
    await widget.session(form={"name": "Мария"})
    await widget.connect()
    ack = await widget.say("Здравствуйте! Есть доставка?", "c1")
    assert ack["type"] == "ack" and ack["cid"] == "c1"
    copy = await world.in_staff(lambda m: text_of(m) == "Здравствуйте! Есть доставка?")
    topic = copy["message_thread_id"]
    assert "Мария · Website" in world.emulator.topics(-1005550000001)[-1]["name"]

    # A resend after a lost ack: the same id, one message in the topic.
    again = await widget.say("Здравствуйте! Есть доставка?", "c1")
    assert again["id"] == ack["id"]

    reply = await world.operator_says(topic, text="Да, <b>сегодня</b> до 21:00")
    await eventually(
        lambda: [r["text"] for r in widget.replies()] == ["Да, <b>сегодня</b> до 21:00"]
    )
    assert widget.replies()[0]["author"] == "Anna"  # shown as text by the widget
    await eventually(lambda: any(e["kind"] == "read" for e in widget.events))  # ✓✓
    # The visitor saw the reply: 👀 on the operator's message in the topic.
    await widget.ws.send_json({"type": "seen", "id": widget.replies()[0]["id"]})  # type: ignore[union-attr]
    await eventually(lambda: world.reactions(reply["message_id"])[-1:] == ["👀"])
    assert (
        sum(text_of(m) == "Здравствуйте! Есть доставка?" for m in world.staff_messages(topic)) == 1
    )

    # Operators edit and delete their replies in the widget too.
    await world.emulator.user_edits(
        world.operator["id"], -1005550000001, reply["message_id"], text="Да, сегодня до 22:00"
    )
    await eventually(lambda: any(e["kind"] == "edit" for e in widget.events))
    edit = next(e for e in widget.events if e["kind"] == "edit")
    assert edit["ref"] == widget.replies()[0]["id"] and edit["text"] == "Да, сегодня до 22:00"
    await widget.disconnect()


async def test_reconnect_resumes_in_order_without_loss_or_duplicates(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    running = await site(start_gateway)
    widget = await visitor(http, running, "Олег")
    for n in range(5):
        await widget.ws.send_json({"type": "message", "cid": f"m{n}", "text": f"часть {n}"})  # type: ignore[union-attr]
    acks = [await widget.answer(f"m{n}") for n in range(5)]
    assert [a["id"] for a in acks] == sorted(a["id"] for a in acks)  # in sending order
    await world.in_staff(lambda m: text_of(m) == "часть 4")
    said = [text_of(m) for m in world.staff_messages() if text_of(m).startswith("часть")]
    assert said == [f"часть {n}" for n in range(5)]
    topic = world.topic_of("Олег")
    await world.operator_says(topic, text="первый ответ")
    await eventually(lambda: len(widget.replies()) == 1)
    seen_up_to = widget.events[-1]["id"]
    await widget.disconnect()

    # While the visitor is away: two replies. Back, from where it was: exactly those.
    await world.operator_says(topic, text="второй ответ")
    await world.operator_says(topic, text="третий ответ")
    back = Widget(http, running.url)
    back.token = widget.token
    await asyncio.sleep(0.3)
    await back.connect(since=seen_up_to)
    await eventually(
        lambda: [r["text"] for r in back.replies()] == ["второй ответ", "третий ответ"]
    )
    # The reload shows the whole history once.
    fresh = Widget(http, running.url)
    fresh.token = widget.token
    await fresh.connect()
    await eventually(lambda: len(fresh.replies()) == 3)
    mine = [e["text"] for e in fresh.events if e["kind"] == "msg" and e["dir"] == "in"]
    assert mine == [f"часть {n}" for n in range(5)]
    await back.disconnect()
    await fresh.disconnect()


async def test_long_polling_works_where_a_socket_cannot_be_opened(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    running = await site(start_gateway)
    widget = await visitor(http, running, "Ирина", connect=False)
    status, ack = await widget.call(
        "POST", "/messages", json={"type": "message", "cid": "p1", "text": "Через опрос"}
    )
    assert status == 200 and ack["type"] == "ack"
    copy = await world.in_staff(lambda m: text_of(m) == "Через опрос")
    status, answer = await widget.call("GET", f"/events?since={ack['id']}")
    assert status == 200  # only what came after (a read mark, maybe): no own message again
    assert all(e["kind"] != "msg" for e in answer["events"])
    since = answer["events"][-1]["id"] if answer["events"] else ack["id"]
    waiting = asyncio.create_task(widget.call("GET", f"/events?since={since}"))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # held open until something happens
    await world.operator_says(copy["message_thread_id"], text="Ответ в опросе")
    status, answer = await asyncio.wait_for(waiting, 10)
    assert [e["text"] for e in answer["events"] if e["kind"] == "msg"] == ["Ответ в опросе"]


async def test_files_both_ways(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    running = await site(start_gateway)
    widget = await visitor(http, running, "Пётр", connect=False)
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="../../receipt.png", content_type="image/png")
    status, stored = await widget.call("POST", "/files", data=form)
    assert status == 200 and stored["mime"] == "image/png" and stored["name"] == "receipt.png"
    await widget.connect()
    ack = await widget.say("чек", "f1", file={"id": stored["id"]})
    assert ack["type"] == "ack"
    photo = await world.in_staff(lambda m: "photo" in m and m.get("caption") == "чек")
    topic = photo["message_thread_id"]
    await world.operator_says(
        topic, document=("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf")
    )
    await eventually(lambda: any("file" in r for r in widget.replies()))
    sent = next(r for r in widget.replies() if "file" in r)["file"]
    assert sent["name"] == "invoice.pdf"
    async with http.get(f"{widget.root}/files/{sent['id']}") as response:
        assert await response.read() == b"%PDF-1.4 invoice"
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    # A name in another alphabet survives the download header (RFC 6266).
    form = aiohttp.FormData()
    form.add_field("file", b"%PDF-1.4 x", filename="счёт.pdf", content_type="application/pdf")
    status, pdf = await widget.call("POST", "/files", data=form)
    assert status == 200 and pdf["name"] == "счёт.pdf"
    async with http.get(f"{widget.root}/files/{pdf['id']}") as response:
        assert (
            "filename*=UTF-8''%D1%81%D1%87%D1%91%D1%82.pdf"
            in response.headers["Content-Disposition"]
        )
    status, answer = await widget.call("POST", "/files", json={"file": "not multipart"})
    assert status == 400 and "multipart" in answer["error"]
    # Someone else's file cannot be sent as one's own.
    other = Widget(http, running.url)
    await other.session(form={"name": "Чужой"})
    await other.connect()
    refused = await other.say("", "f2", file={"id": stored["id"]})
    assert refused["type"] == "error" and "upload it first" in refused["error"]
    await widget.disconnect()
    await other.disconnect()


async def test_the_form_phone_joins_the_visitor_to_their_whatsapp_contact(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession, wa: WhatsAppEmulator
) -> None:
    running = await site(start_gateway, with_wa(wa))
    ivan = wa.create_user("Ivan", "79161234567")
    wa.user_send(NUMBER, ivan, "Заказ 7 где?")
    first = await world.in_staff(lambda m: text_of(m) == "Заказ 7 где?")
    widget = Widget(http, running.url)
    session = await widget.session(
        form={"name": "Иван", "phone": "8 916 123-45-67", "email": "Ivan@Mail.example"}
    )
    assert session["profile"] == {
        "name": "Иван",
        "phone": "+79161234567",
        "email": "ivan@mail.example",
    }
    await widget.connect()
    await widget.say("Это я, с сайта", "j1")
    joined = await world.in_staff(lambda m: text_of(m).endswith("Это я, с сайта"))
    assert joined["message_thread_id"] == first["message_thread_id"]
    contact = await running.app.pipeline.contacts.of_identity("site", session["visitor"])
    assert contact is not None
    _, _, emails = await running.app.pipeline.contacts.details(contact)
    assert "ivan@mail.example" in str(emails)
    await widget.disconnect()


async def test_a_signed_site_user_is_the_same_visitor_on_any_device(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    running = await site(start_gateway)
    signed = hmac.new(IDENTITY_SECRET.encode(), b"user-42", hashlib.sha256).hexdigest()
    laptop, phone = Widget(http, running.url), Widget(http, running.url)
    one = await laptop.session(user_id="user-42", user_hash=signed)
    two = await phone.session(user_id="user-42", user_hash=signed)
    assert one["visitor"] == two["visitor"] and one["visitor"].startswith("u")
    # A token the chat no longer recognises (its secret rotated) starts a new visitor.
    stale = Widget(http, running.url)
    stale.token = "v0123456789.0000"
    renewed = await stale.session()
    assert renewed["visitor"] != "v0123456789" and renewed["token"] != "v0123456789.0000"
    stranger = Widget(http, running.url)
    status, answer = await stranger.call(
        "POST", "/session", json={"user_id": "user-42", "user_hash": "0" * 64}
    )
    assert status == 401 and "signature" in answer["error"]


async def test_bad_requests_are_refused_clearly(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    running = await site(start_gateway, lambda d: d["channels"][-1].update(messages_per_minute=6))
    widget = await visitor(http, running, "Тест", connect=False)

    evil = Widget(http, running.url, origin="https://evil.example")
    evil.token = widget.token
    status, answer = await evil.call(
        "POST", "/messages", json={"type": "message", "cid": "x", "text": "hi"}
    )
    assert status == 403 and "may not use" in answer["error"]
    forged = Widget(http, running.url)
    forged.token = widget.token[:-4] + "abcd"  # type: ignore[index]
    status, answer = await forged.call(
        "POST", "/messages", json={"type": "message", "cid": "x", "text": "hi"}
    )
    assert status == 401
    status, answer = await widget.call("POST", "/messages", data=b"{not json")
    assert status == 400 and "JSON" in answer["error"]
    checks = [
        ({"type": "message", "cid": "bad cid!", "text": "hi"}, "cid"),
        ({"type": "message", "cid": "long", "text": "x" * 5000}, "longer than 4096"),
        ({"type": "message", "cid": "empty", "text": "   "}, "needs text or a file"),
        ({"type": "teleport"}, "unknown frame"),
    ]
    second = Widget(http, running.url)
    await second.session(form={"name": "Тест 2"})
    for n, (frame, why) in enumerate(checks):  # within each visitor's burst of 5
        status, answer = await (widget if n < 2 else second).call("POST", "/messages", json=frame)
        assert status == 400 and why in answer["error"], (frame, answer)
    status, answer = await widget.call("POST", "/session", json={"form": {"phone": "call me"}})
    assert status == 400 and answer["error"].startswith("phone:")
    status, answer = await widget.call("POST", "/session", json={"form": {"email": "nope"}})
    assert status == 400 and "e-mail" in answer["error"]

    # A "picture" whose bytes are not one; a type the chat does not take; too big.
    widget = await visitor(http, running, "Файлы", connect=False)
    for name, data, mime in (
        ("fake.png", b"MZ\x90\x00 not a png", "image/png"),
        ("tool.exe", b"MZ\x90\x00", "application/x-msdownload"),
    ):
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type=mime)
        status, answer = await widget.call("POST", "/files", data=form)
        assert status == 415, answer
    form = aiohttp.FormData()
    big = io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"0" * (11 * 2**20))
    form.add_field("file", big, filename="big.png", content_type="image/png")
    status, answer = await widget.call("POST", "/files", data=form)
    assert status == 413 and "10 MB" in answer["error"]

    # A WebSocket that does not say who it is, is closed.
    async with http.ws_connect(f"{widget.root}/ws", headers={"Origin": widget.origin}) as ws:
        await ws.send_json({"type": "hello", "token": "v12345678.nope"})
        closed = await ws.receive()
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4401

    # Flooding: refused with 429 and the wait, nothing stored beyond the limit.
    widget = await visitor(http, running, "Флуд", connect=False)
    codes = []
    for n in range(10):
        status, answer = await widget.call(
            "POST", "/messages", json={"type": "message", "cid": f"fl{n}", "text": f"flood {n}"}
        )
        codes.append(status)
    assert 429 in codes and codes.count(200) <= 6
    await eventually(lambda: any(text_of(m) == "flood 0" for m in world.staff_messages()))
    assert not any(text_of(m) == "flood 9" for m in world.staff_messages())


async def test_typing_shows_in_the_topic_at_most_every_few_seconds(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    running = await site(start_gateway)
    widget = await visitor(http, running, "Нина")
    await widget.ws.send_json({"type": "typing"})  # type: ignore[union-attr]
    await widget.say("Вопрос", "t1")  # no topic before the first message: nothing shown
    copy = await world.in_staff(lambda m: text_of(m) == "Вопрос")
    for _ in range(3):
        await widget.ws.send_json({"type": "typing"})  # type: ignore[union-attr]
    await eventually(lambda: len(world.emulator.calls_of("sendChatAction")) == 1)
    await asyncio.sleep(0.3)
    [call] = world.emulator.calls_of("sendChatAction")
    assert call.params["action"] == "typing"
    assert int(call.params["message_thread_id"]) == copy["message_thread_id"]
    await widget.disconnect()


async def test_outside_working_hours_the_widget_is_offline_and_the_away_message_waits(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    clock = Clock(datetime(2026, 11, 23, 22, 0, tzinfo=ZoneInfo("Europe/Moscow")))
    hours = {"week": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}
    extra = {"working_hours": hours, "away_message": "Мы ответим утром."}
    running = await start_gateway(tweak=with_site(**extra), clock=clock)
    widget = Widget(http, running.url)
    _, config = await widget.call("GET", "/config")
    assert config["online"] is False and "offline" in config["offline"].lower()
    await widget.session(form={"name": "Поздний", "phone": "+79160001122"})
    status, ack = await widget.call(
        "POST", "/messages", json={"type": "message", "cid": "n1", "text": "Ночной вопрос"}
    )
    assert status == 200
    await world.in_staff(lambda m: text_of(m) == "Ночной вопрос")  # the task is open
    status, answer = await widget.call("GET", f"/events?since={ack['id']}")
    replies = [e["text"] for e in answer["events"] if e["kind"] == "msg"]
    assert replies == ["Мы ответим утром."]  # kept in the log for their return


async def test_redis_restarting_loses_nothing_in_the_widget(
    world: World, start_gateway: StartGateway, http: aiohttp.ClientSession, redis_server: Any
) -> None:
    running = await site(start_gateway)
    widget = await visitor(http, running, "Рестарт")
    await widget.say("до перезапуска", "r1")
    copy = await world.in_staff(lambda m: text_of(m) == "до перезапуска")
    redis_server.stop()
    try:
        refused = await widget.say("во время", "r2")
        assert refused["type"] == "error" and refused["status"] == 503  # "try again"
    finally:
        redis_server.start()
        await redis_server.wait_ready()
    again = await widget.say("во время", "r2")  # the widget resends it
    assert again["type"] == "ack"
    await world.operator_says(copy["message_thread_id"], text="после перезапуска")
    await eventually(lambda: [r["text"] for r in widget.replies()] == ["после перезапуска"], 30)
    await world.in_staff(lambda m: text_of(m) == "во время")
    await widget.disconnect()
