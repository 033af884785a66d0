"""The VK emulator over real loopback HTTP, called the way vk_api calls VK.

vk_api POSTs form-encoded parameters (with ``access_token`` and ``v``) to
``{base}/method/{name}``, uploads files as multipart (``file0`` for photos, ``file`` for
documents) and polls ``{server}?act=a_check&key=&ts=&wait=`` with GET; the helpers below
do exactly that with aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.vk.parse import parse_event
from gateway.model import AccountId, InboundMessage, InboundStatus, Kind
from gateway.sandbox.vk import VkEmulator
from gateway.sandbox.vk.files import solid_png

GROUP = 123456
TOKEN = "vk1.a.community-token-123456"
OTHER_GROUP = 654321
OTHER_TOKEN = "vk1.a.other-token"
PNG = solid_png(1280, 960)


@pytest.fixture
async def emu() -> AsyncIterator[VkEmulator]:
    emulator = VkEmulator(callback_backoff=0.01)
    emulator.create_group(GROUP, TOKEN, "Shop", confirmation="c0nf1rm")
    emulator.create_group(OTHER_GROUP, OTHER_TOKEN, "Other")
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Api:
    """A thin vk_api look-alike: form-encoded POSTs, the answer's JSON as is."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str = TOKEN) -> None:
        self.http, self.base, self.token = http, base, token

    async def raw(self, method: str, **params: Any) -> dict[str, Any]:
        data = {"v": "5.199", "access_token": self.token}
        data.update({k: str(v) for k, v in params.items() if v is not None})
        async with self.http.post(f"{self.base}/method/{method}", data=data) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    async def __call__(self, method: str, **params: Any) -> Any:
        body = await self.raw(method, **params)
        assert "error" not in body, body
        return body["response"]

    async def error(self, method: str, **params: Any) -> tuple[int, str]:
        body = await self.raw(method, **params)
        assert "response" not in body, body
        return body["error"]["error_code"], body["error"]["error_msg"]

    async def upload(self, url: str, field: str, name: str, data: bytes) -> Any:
        form = aiohttp.FormData()
        form.add_field(field, data, filename=name, content_type="application/octet-stream")
        async with self.http.post(url, data=form) as response:
            assert response.status == 200
            return await response.json(content_type=None)

    async def check(self, server: str, key: str, ts: Any, wait: int = 0) -> dict[str, Any]:
        params = {"act": "a_check", "key": key, "ts": str(ts), "wait": str(wait)}
        async with self.http.get(server, params=params) as response:
            body: dict[str, Any] = await response.json()
            return body


@pytest.fixture
def api(emu: VkEmulator, http: aiohttp.ClientSession) -> Api:
    assert emu.base_url is not None
    return Api(http, emu.base_url)


def _customer(emu: VkEmulator, text: str = "hello") -> int:
    user_id = emu.create_user("Olga", "Ivanova")
    emu.user_send(GROUP, user_id, text)
    return user_id


# --- errors and sending -----------------------------------------------------------------------


async def test_token_version_method_and_parameter_errors(emu: VkEmulator, api: Api) -> None:
    assert await Api(api.http, api.base, "wrong").error("users.get", user_ids=1) == (
        5,
        "User authorization failed: invalid access_token (4).",
    )
    assert (await Api(api.http, api.base, "").error("users.get"))[0] == 5
    body = await Api(api.http, api.base, "wrong").raw("users.get", user_ids=1)
    keys = [p["key"] for p in body["error"]["request_params"]]
    assert "access_token" not in keys
    assert {"key": "user_ids", "value": "1"} in body["error"]["request_params"]
    async with api.http.post(
        f"{api.base}/method/users.get", data={"access_token": TOKEN}
    ) as response:
        error = (await response.json())["error"]
    assert (error["error_code"], error["error_msg"]) == (
        8,
        "Invalid request: v (version) is required",
    )
    assert await api.error("messages.sendFancy") == (3, "Unknown method passed")
    assert await api.error("messages.send", random_id=1, message="x") == (
        100,
        "One of the parameters specified was missing or invalid: peer_id is undefined",
    )
    # GET with query parameters works too.
    user_id = emu.create_user("Ivan")
    query = {"access_token": TOKEN, "v": "5.199", "user_ids": str(user_id)}
    async with api.http.get(f"{api.base}/method/users.get", params=query) as response:
        assert (await response.json())["response"][0]["first_name"] == "Ivan"
    assert all("access_token" not in params for _, params in emu.calls)
    assert emu.calls[-1] == ("users.get", {"v": "5.199", "user_ids": str(user_id)})


async def test_send_is_idempotent_by_random_id(emu: VkEmulator, api: Api) -> None:
    user_id = _customer(emu)
    first = await api("messages.send", peer_id=user_id, random_id=77, message="Hi Olga")
    again = await api("messages.send", peer_id=user_id, random_id=77, message="Hi Olga")
    other = await api("messages.send", peer_id=user_id, random_id=78, message="Second")
    assert first == again != other
    history = emu.conversation(GROUP, user_id)
    assert [(m["out"], m["text"], m["random_id"]) for m in history] == [
        (0, "hello", 0),
        (1, "Hi Olga", 77),
        (1, "Second", 78),
    ]
    assert history[1]["id"] == first and history[1]["from_id"] == -GROUP
    assert history[1]["update_time"] is None and history[1]["date"] > 0
    assert await api.error("messages.send", peer_id=user_id, message="x") == (
        100,
        "One of the parameters specified was missing or invalid: random_id is undefined",
    )


async def test_send_needs_the_customers_permission(emu: VkEmulator, api: Api) -> None:
    user_id = emu.create_user("Silent")
    denied = (901, "Can't send messages for users without permission")
    assert await api.error("messages.send", peer_id=user_id, random_id=1, message="x") == denied
    emu.user_allow(GROUP, user_id)
    assert await api("messages.send", peer_id=user_id, random_id=2, message="x") > 0
    emu.user_deny(GROUP, user_id)
    assert await api.error("messages.send", peer_id=user_id, random_id=3, message="x") == denied
    emu.user_send(GROUP, user_id, "I'm back")
    assert await api("messages.send", peer_id=user_id, random_id=4, message="x") > 0
    types = [e["type"] for e in emu.events(GROUP)]
    assert types == ["message_allow", "message_deny", "message_new"]
    assert emu.events(GROUP)[0]["object"] == {"user_id": user_id, "key": ""}
    assert emu.events(GROUP)[1]["object"] == {"user_id": user_id}


async def test_send_validates_text_attachments_and_keyboard(emu: VkEmulator, api: Api) -> None:
    user_id = _customer(emu)
    assert await api.error("messages.send", peer_id=user_id, random_id=1, message="x" * 4097) == (
        914,
        "Message is too long",
    )
    assert await api("messages.send", peer_id=user_id, random_id=2, message="я" * 4096) > 0
    assert (await api.error("messages.send", peer_id=user_id, random_id=3))[0] == 100
    code, text = await api.error(
        "messages.send", peer_id=user_id, random_id=4, attachment="photo-123456_999_abc"
    )
    assert code == 100 and "attachment" in text
    keyboard = '{"one_time":false,"inline":true,"buttons":[]}'
    await api("messages.send", peer_id=user_id, random_id=5, message="k", keyboard=keyboard)
    await api("messages.send", peer_id=user_id, random_id=6, lat="55.75", long="37.61")
    history = emu.conversation(GROUP, user_id)
    assert history[-2]["keyboard"] == {"one_time": False, "inline": True, "buttons": []}
    assert history[-1]["geo"]["coordinates"] == {"latitude": 55.75, "longitude": 37.61}
    quoted = history[0]["id"]
    await api("messages.send", peer_id=user_id, random_id=7, message="re", reply_to=quoted)
    assert emu.conversation(GROUP, user_id)[-1]["reply_message"]["text"] == "hello"


async def test_edit_and_mark_as_read(emu: VkEmulator, api: Api) -> None:
    user_id = _customer(emu)
    sent = await api("messages.send", peer_id=user_id, random_id=1, message="Helo")
    edited = await api(
        "messages.edit", peer_id=user_id, message_id=sent, message="Hello", keep_snippets=1
    )
    assert edited == 1
    mine = emu.conversation(GROUP, user_id)[1]
    assert mine["text"] == "Hello" and mine["update_time"] is not None
    theirs = emu.conversation(GROUP, user_id)[0]["id"]
    assert (await api.error("messages.edit", peer_id=user_id, message_id=theirs, message="x"))[
        0
    ] == 15
    assert (await api.error("messages.edit", peer_id=user_id, message_id=999, message="x"))[
        0
    ] == 100
    assert emu.read_up_to(GROUP, user_id) == 0
    await api("messages.markAsRead", peer_id=user_id, start_message_id=theirs, group_id=GROUP)
    assert emu.read_up_to(GROUP, user_id) == theirs


async def test_users_get_with_fields_and_photos(
    emu: VkEmulator, api: Api, http: aiohttp.ClientSession
) -> None:
    plain = emu.create_user("Anna", "Petrova", user_id=42, screen_name="anna")
    pictured = emu.create_user("Boris", photo=PNG)
    found = await api("users.get", user_ids=f"{plain},999999,{pictured}", fields="photo_200")
    assert [u["id"] for u in found] == [plain, pictured]
    assert found[0] == {
        "id": 42,
        "first_name": "Anna",
        "last_name": "Petrova",
        "can_access_closed": True,
        "is_closed": False,
        "photo_200": "https://vk.com/images/camera_200.png",
    }
    async with http.get(found[1]["photo_200"]) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(PNG))
        assert await response.read() == PNG
    named = await api("users.get", user_ids=plain, fields="screen_name")
    assert named[0]["screen_name"] == "anna" and "photo_200" not in named[0]


# --- uploads --------------------------------------------------------------------------------


async def test_photo_upload_save_and_send(
    emu: VkEmulator, api: Api, http: aiohttp.ClientSession
) -> None:
    user_id = _customer(emu)
    server = await api("photos.getMessagesUploadServer", peer_id=user_id)
    assert server["album_id"] == -3 and server["group_id"] == GROUP
    assert server["upload_url"].startswith(f"{emu.base_url}/")
    uploaded = await api.upload(server["upload_url"], "file0", "file0.png", PNG)
    assert isinstance(uploaded["server"], int) and isinstance(uploaded["photo"], str)
    assert uploaded["photo"] != "[]"
    tampered = {**uploaded, "hash": "0" * 32}
    assert await api.error("photos.saveMessagesPhoto", **tampered) == (
        100,
        "One of the parameters specified was missing or invalid: photos_list is invalid",
    )
    saved = await api("photos.saveMessagesPhoto", **uploaded)
    photo = saved[0]
    assert photo["owner_id"] == -GROUP and photo["album_id"] == -3
    assert {"id", "access_key", "date", "sizes"} <= photo.keys()
    largest = photo["sizes"][-1]
    assert (largest["width"], largest["height"]) == (1280, 960)
    async with http.get(largest["url"]) as response:
        assert await response.read() == PNG
    ref = f"photo{photo['owner_id']}_{photo['id']}_{photo['access_key']}"
    await api("messages.send", peer_id=user_id, random_id=1, attachment=ref)
    sent = emu.conversation(GROUP, user_id)[-1]
    assert sent["attachments"][0]["type"] == "photo"
    assert sent["attachments"][0]["photo"]["id"] == photo["id"]
    # Saved once only; and an upload without a file gives an empty list that can't be saved.
    assert (await api.error("photos.saveMessagesPhoto", **uploaded))[0] == 100
    empty = await api.upload(server["upload_url"], "other", "x.png", PNG)
    assert empty["photo"] == "[]"
    assert (await api.error("photos.saveMessagesPhoto", **empty))[0] == 100


async def test_doc_and_voice_upload(emu: VkEmulator, api: Api, http: aiohttp.ClientSession) -> None:
    user_id = _customer(emu)
    server = await api("docs.getMessagesUploadServer", type="doc", peer_id=user_id)
    uploaded = await api.upload(server["upload_url"], "file", "invoice.pdf", b"%PDF-1.4 test")
    saved = await api("docs.save", file=uploaded["file"], title="Invoice.pdf")
    assert saved["type"] == "doc"
    doc = saved["doc"]
    assert (doc["owner_id"], doc["title"], doc["size"], doc["ext"]) == (
        -GROUP,
        "Invoice.pdf",
        13,
        "pdf",
    )
    async with http.get(doc["url"]) as response:
        assert await response.read() == b"%PDF-1.4 test"
    voice_server = await api("docs.getMessagesUploadServer", type="audio_message", peer_id=user_id)
    voice_file = await api.upload(voice_server["upload_url"], "file", "v.ogg", b"OggS" * 1000)
    voice = await api("docs.save", file=voice_file["file"])
    assert voice["type"] == "audio_message"
    audio = voice["audio_message"]
    assert {"id", "owner_id", "duration", "waveform", "link_ogg", "link_mp3"} <= audio.keys()
    refs = f"doc{doc['owner_id']}_{doc['id']},doc{audio['owner_id']}_{audio['id']}"
    await api("messages.send", peer_id=user_id, random_id=1, attachment=refs)
    kinds = [a["type"] for a in emu.conversation(GROUP, user_id)[-1]["attachments"]]
    assert kinds == ["doc", "audio_message"]
    assert await api.upload(server["upload_url"], "wrong", "x.txt", b"x") == {"error": "no file"}
    assert (await api.error("docs.save", file="forged|doc|0"))[0] == 100
    emu.fail_upload(502)
    form = aiohttp.FormData()
    form.add_field("file", b"x", filename="x.txt")
    async with http.post(server["upload_url"], data=form) as response:
        assert response.status == 502
        assert "html" in response.content_type


# --- long poll ------------------------------------------------------------------------------


async def test_long_poll_delivers_events_and_replays_kept_ones(emu: VkEmulator, api: Api) -> None:
    lp = await api("groups.getLongPollServer", group_id=GROUP)
    assert isinstance(lp["ts"], str) and lp["server"].startswith(f"{emu.base_url}/")
    empty = await api.check(lp["server"], lp["key"], lp["ts"], wait=0)
    assert empty == {"ts": lp["ts"], "updates": []}
    waiting = asyncio.create_task(api.check(lp["server"], lp["key"], lp["ts"], wait=25))
    await emu.longpoll_held(GROUP)
    user_id = _customer(emu, "first")
    answer = await asyncio.wait_for(waiting, 5)
    assert isinstance(answer["ts"], str) and int(answer["ts"]) > int(lp["ts"])
    [event] = answer["updates"]
    assert event["type"] == "message_new" and event["group_id"] == GROUP
    assert event["v"] == "5.199" and len(event["event_id"]) == 40
    int(event["event_id"], 16)
    message = event["object"]["message"]
    assert (message["from_id"], message["peer_id"], message["text"]) == (user_id, user_id, "first")
    assert message["out"] == 0 and message["random_id"] == 0
    assert event["object"]["client_info"]["keyboard"] is True
    # Resuming with the older ts gives the kept event again.
    again = await api.check(lp["server"], lp["key"], lp["ts"], wait=0)
    assert again["updates"] == [event]


async def test_long_poll_failures_and_recovery(emu: VkEmulator, api: Api) -> None:
    lp = await api("groups.getLongPollServer", group_id=GROUP)
    server, key, ts = lp["server"], lp["key"], lp["ts"]
    user_id = _customer(emu, "one")
    # 1: history lost; ts is a number here; continuing with it works.
    emu.longpoll_failed(GROUP, 1)
    failed = await api.check(server, key, ts)
    assert failed == {"failed": 1, "ts": int(ts) + 1}
    emu.user_send(GROUP, user_id, "two")
    assert [
        e["object"]["message"]["text"]
        for e in (await api.check(server, key, failed["ts"]))["updates"]
    ] == ["two"]
    # 2: the key expired (and stays invalid); a new key with the old ts gets everything kept.
    emu.longpoll_failed(GROUP, 2)
    assert await api.check(server, key, ts) == {"failed": 2}
    assert await api.check(server, key, ts) == {"failed": 2}
    fresh = await api("groups.getLongPollServer", group_id=GROUP)
    assert fresh["key"] != key
    texts = [
        e["object"]["message"]["text"]
        for e in (await api.check(server, fresh["key"], ts))["updates"]
    ]
    assert texts == ["one", "two"]
    # 3: information lost: a new key and ts are needed; the old ts is refused with failed 1.
    key = fresh["key"]
    waiting = asyncio.create_task(api.check(server, key, fresh["ts"], wait=25))
    await emu.longpoll_held(GROUP)
    emu.longpoll_failed(GROUP, 3)
    assert await asyncio.wait_for(waiting, 5) == {"failed": 3}
    assert await api.check(server, key, fresh["ts"]) == {"failed": 2}
    newest = await api("groups.getLongPollServer", group_id=GROUP)
    assert (await api.check(server, newest["key"], ts))["failed"] == 1
    emu.user_send(GROUP, user_id, "three")
    after = await api.check(server, newest["key"], newest["ts"])
    assert [e["object"]["message"]["text"] for e in after["updates"]] == ["three"]
    assert await api.check(server, "not-a-key", newest["ts"]) == {"failed": 2}
    assert (await api.error("groups.getLongPollServer", group_id=OTHER_GROUP))[0] == 15


# --- callback API ---------------------------------------------------------------------------


class Receiver:
    """A Callback API endpoint: answers the confirmation with ``code`` and events with the
    queued answers, then ``ok``."""

    def __init__(self, code: str, answers: list[tuple[int, str]] | None = None) -> None:
        self.code = code
        self.answers = list(answers or [])
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append((request.content_type, body))
        if body["type"] == "confirmation":
            return web.Response(text=self.code)
        status, text = self.answers.pop(0) if self.answers else (200, "ok")
        return web.Response(status=status, text=text)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/webhook/vk/shop", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/webhook/vk/shop"

    def events(self) -> list[dict[str, Any]]:
        return [body for _, body in self.received if body["type"] != "confirmation"]


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        if receiver.runner is not None:
            await receiver.runner.cleanup()


async def test_callback_server_confirmation(
    emu: VkEmulator, api: Api, receivers: list[Receiver]
) -> None:
    code = (await api("groups.getCallbackConfirmationCode", group_id=GROUP))["code"]
    assert code == "c0nf1rm"
    good, bad = Receiver(code), Receiver("something else")
    receivers += [good, bad]
    good_url, bad_url = await good.start(), await bad.start()
    added = await api(
        "groups.addCallbackServer", group_id=GROUP, url=good_url, title="gw", secret_key="s3"
    )
    wrong = await api("groups.addCallbackServer", group_id=GROUP, url=bad_url, title="gw2")
    await emu.callbacks_idle()
    servers = await api("groups.getCallbackServers", group_id=GROUP)
    by_id = {item["id"]: item for item in servers["items"]}
    assert servers["count"] == 2
    assert by_id[added["server_id"]]["status"] == "ok"
    assert by_id[added["server_id"]]["secret_key"] == "s3"
    assert by_id[wrong["server_id"]]["status"] == "failed"
    assert good.received[0] == (
        "application/json",
        {"type": "confirmation", "group_id": GROUP, "secret": "s3"},
    )
    remote = "https://example.com/hook"
    assert (await api.error("groups.addCallbackServer", group_id=GROUP, url=remote, title="x"))[
        0
    ] == 100


async def test_callback_delivery_with_secret_and_retries(
    emu: VkEmulator, api: Api, receivers: list[Receiver]
) -> None:
    receiver = Receiver("c0nf1rm", answers=[(500, "oops"), (200, "not ok")])
    receivers.append(receiver)
    url = await receiver.start()
    server_id = (
        await api(
            "groups.addCallbackServer", group_id=GROUP, url=url, title="gw", secret_key="s3cr3t"
        )
    )["server_id"]
    await emu.callbacks_idle()
    user_id = _customer(emu, "before the settings")  # no event types switched on yet
    await emu.callbacks_idle()
    assert receiver.events() == []
    await api(
        "groups.setCallbackSettings",
        group_id=GROUP,
        server_id=server_id,
        api_version="5.199",
        message_new=1,
        message_edit=1,
    )
    sent = emu.user_send(GROUP, user_id, "Where is my order?")
    emu.user_edit(GROUP, user_id, sent["id"], "Where is my order #42?")
    await emu.callbacks_idle()
    events = receiver.events()
    assert [e["type"] for e in events] == [
        "message_new",
        "message_new",
        "message_new",
        "message_edit",
    ]
    assert events[0] == events[2]  # the same event, retried
    assert all(e["secret"] == "s3cr3t" and e["group_id"] == GROUP for e in events)
    assert events[3]["object"]["text"] == "Where is my order #42?"
    assert events[3]["object"]["update_time"] >= events[3]["object"]["date"]
    attempts = [(e["type"], e["attempt"], e["status"], e["ok"]) for e in emu.callback_log]
    assert attempts == [
        ("confirmation", 1, 200, True),
        ("message_new", 1, 500, False),
        ("message_new", 2, 200, False),
        ("message_new", 3, 200, True),
        ("message_edit", 1, 200, True),
    ]
    settings = await api("groups.getCallbackSettings", group_id=GROUP, server_id=server_id)
    assert settings["events"]["message_new"] == 1 and settings["events"]["message_deny"] == 0


async def test_callback_gives_up_after_the_last_attempt(
    emu: VkEmulator, receivers: list[Receiver]
) -> None:
    receiver = Receiver("c0nf1rm", answers=[(503, "busy")] * 10)
    receivers.append(receiver)
    emu.add_callback_server(GROUP, await receiver.start(), secret="s")
    await emu.callbacks_idle()
    assert emu.callback_servers(GROUP)[0]["status"] == "ok"
    user_id = _customer(emu, "lost")
    emu.user_deny(GROUP, user_id)
    await emu.callbacks_idle()
    tries = [(e["type"], e["attempt"]) for e in emu.callback_log if e["type"] != "confirmation"]
    assert tries == [("message_new", i) for i in range(1, 5)] + [
        ("message_deny", i) for i in range(1, 5)
    ]


# --- faults ---------------------------------------------------------------------------------


async def test_injected_faults_and_rate_limit(emu: VkEmulator, api: Api) -> None:
    user_id = _customer(emu)
    emu.fail("messages.send", 10, times=2)
    for random_id in (1, 2):
        assert await api.error(
            "messages.send", peer_id=user_id, random_id=random_id, message="x"
        ) == (
            10,
            "Internal server error",
        )
    assert await api("messages.send", peer_id=user_id, random_id=3, message="x") > 0
    emu.fail("*", 1, message="Unknown error occurred, try later")
    assert await api.error("users.get", user_ids=user_id) == (
        1,
        "Unknown error occurred, try later",
    )
    emu.fail_http("users.get", 502)
    async with api.http.post(
        f"{api.base}/method/users.get", data={"access_token": TOKEN, "v": "5.199"}
    ) as response:
        assert response.status == 502
        assert response.content_type == "text/html"
        assert "502 Bad Gateway" in await response.text()
    assert await api("users.get", user_ids=user_id)
    emu.rps_limit = 2
    answers = [await api.raw("users.get", user_ids=user_id) for _ in range(3)]
    assert [a.get("error", {}).get("error_code") for a in answers] == [None, None, 6]
    assert answers[2]["error"]["error_msg"] == "Too many requests per second"
    assert await Api(api.http, api.base, OTHER_TOKEN)("users.get", user_ids=user_id)
    emu.rps_limit = None
    assert await api("users.get", user_ids=user_id)


# --- events parse with the gateway's parser --------------------------------------------------


async def test_every_emitted_event_parses(emu: VkEmulator) -> None:
    user_id = emu.create_user("Olga")
    first = emu.user_send(GROUP, user_id, "plain text")
    emu.user_send(GROUP, user_id, "photo", photo=PNG)
    emu.user_send(GROUP, user_id, doc=("price list.xlsx", b"PK\x03\x04"))
    emu.user_send(GROUP, user_id, voice=b"OggS" * 600)
    emu.user_send(GROUP, user_id, sticker=True)
    emu.user_send(GROUP, user_id, "look", video=True, wall=True)
    emu.user_send(GROUP, user_id, link="https://example.com/item/1")
    emu.user_send(GROUP, user_id, "here", geo=(55.7558, 37.6173))
    emu.user_send(GROUP, user_id, "quote", reply_to=first["id"], forward=[first["id"]])
    emu.user_edit(GROUP, user_id, first["id"], "plain text, edited")
    emu.user_deny(GROUP, user_id)
    emu.user_allow(GROUP, user_id)
    now = datetime.now(UTC)
    parsed = [
        parse_event(event, account=AccountId("vk_shop"), received_at=now)
        for event in emu.events(GROUP)
    ]
    statuses = [
        [e.allowed for e in events if isinstance(e, InboundStatus)] for events in parsed[-2:]
    ]
    assert statuses == [[False], [True]]
    messages = [[e for e in events if isinstance(e, InboundMessage)] for events in parsed[:-2]]
    kinds = [[m.content.kind for m in events] for events in messages]
    assert kinds == [
        [Kind.TEXT],
        [Kind.PHOTO],
        [Kind.DOCUMENT],
        [Kind.VOICE],
        [Kind.STICKER],
        [Kind.TEXT, Kind.TEXT],
        [Kind.TEXT],
        [Kind.TEXT, Kind.LOCATION],
        [Kind.TEXT],
        [Kind.TEXT],
    ]
    photo = messages[1][0].content.attachment
    assert photo is not None and (photo.width, photo.height) == (1280, 960)
    assert emu.file_bytes(photo.file_id) == PNG
    assert messages[8][0].reply_to == str(first["id"])
    assert messages[9][0].edited and messages[9][0].content.text == "plain text, edited"


# --- mounting and the console API -----------------------------------------------------------


async def test_mounted_as_sub_app_with_console_api(http: aiohttp.ClientSession) -> None:
    emulator = VkEmulator()
    emulator.create_group(GROUP, TOKEN)
    root = web.Application()
    root.add_subapp("/sandbox/vk", emulator.make_app())
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/sandbox/vk"
    emulator.set_base_url(base)
    try:
        control = f"{base}/_control"
        async with http.get(f"{control}/state") as response:
            state = await response.json()
        assert state["groups"] == [{"id": GROUP, "name": "Shop", "callback_servers": []}]
        assert TOKEN not in str(state)
        async with http.post(f"{control}/users", json={"first_name": "Vera"}) as response:
            vera = (await response.json())["id"]
        photo = {"name": "p.png", "mime_type": "image/png", "content_b64": "iVBORw0KGgo="}
        body = {"group_id": GROUP, "user_id": vera, "text": "hi", "kind": "photo", "file": photo}
        async with http.post(f"{control}/send", json=body) as response:
            message = await response.json()
        url = message["attachments"][0]["photo"]["sizes"][0]["url"]
        assert url.startswith(f"{base}/files/")
        async with http.get(url) as response:
            assert await response.read() == b"\x89PNG\r\n\x1a\n"
        async with http.post(f"{control}/send", json={"group_id": GROUP}) as response:
            assert response.status == 400
        api = Api(http, base)
        await api("messages.send", peer_id=vera, random_id=1, message="Hello Vera")
        async with http.get(f"{control}/conversations/{GROUP}/{vera}") as response:
            chat = await response.json()
        assert [m["text"] for m in chat["messages"]] == ["hi", "Hello Vera"]
        assert chat["allowed"] is True
        async with http.get(f"{control}/events", params={"after": "0", "timeout": "0"}) as response:
            feed = await response.json()
        assert [e["type"] for e in feed["events"]] == ["message", "message"]
        lp = await api("groups.getLongPollServer", group_id=GROUP)
        assert lp["server"] == f"{base}/longpoll/{GROUP}"
    finally:
        await runner.cleanup()
