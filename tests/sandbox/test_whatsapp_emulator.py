"""The WhatsApp Cloud API emulator over real loopback HTTP, called the way an adapter
calls ``graph.facebook.com``: JSON POSTs with ``Authorization: Bearer``, multipart media
uploads, ``GET /{media_id}`` then the bearer-protected download URL; and a webhook
receiver that answers the ``hub.challenge`` and checks ``X-Hub-Signature-256``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.sandbox.whatsapp import SIGNATURE_HEADER, WhatsAppEmulator, signature

PNID, DISPLAY, TOKEN = "106540352242922", "+1 555-078-3881", "EAAJB-business-token"
OTHER_PNID, OTHER_TOKEN = "200000000000001", "EAAJB-other-token"
WABA, APP_SECRET, VERIFY = "102290129340398", "app-secret-123", "verify-me"
OLGA = "79161234567"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
WINDOW_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number."
)
Json = dict[str, Any]


def typed(kind: str, obj: Any) -> Json:
    """``{"type": kind, kind: obj}``, the shape of every message body."""
    return {"type": kind, kind: obj}


def button(button_id: str, title: str) -> Json:
    return {"type": "reply", "reply": {"id": button_id, "title": title}}


def ask(kind: str, action: Json, text: str = "Pick") -> Json:
    """An ``interactive`` message body."""
    return typed("interactive", {"type": kind, "body": {"text": text}, "action": action})


def rows(count: int) -> list[Json]:
    return [{"id": f"r{i}", "title": f"Row {i}", "description": "d"} for i in range(count)]


def template(name: str = "order_ready", *params: str, language: str = "en_US") -> Json:
    parameters = [{"type": "text", "text": p} for p in params]
    components = [{"type": "body", "parameters": parameters}]
    return typed(
        "template", {"name": name, "language": {"code": language}, "components": components}
    )


@pytest.fixture
async def emu() -> AsyncIterator[WhatsAppEmulator]:
    emulator = WhatsAppEmulator(webhook_backoff=0.01)
    emulator.create_number(PNID, DISPLAY, TOKEN, app_secret="api-app-secret")
    emulator.create_number(OTHER_PNID, "+1 555 000 0001", OTHER_TOKEN, waba_id="999")
    emulator.create_template("order_ready")
    await emulator.start()
    yield emulator
    await emulator.stop()


class Graph:
    """A thin Cloud API client: JSON bodies, bearer token, the answer as is."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def call(
        self, method: str, path: str, *, token: str | None = TOKEN, **kwargs: Any
    ) -> tuple[int, Any]:
        url = path if path.startswith("http") else f"{self.base}/v21.0/{path}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, url, headers=headers, **kwargs) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()

    async def send(self, to: str, body: Json, **extra: Any) -> tuple[int, Json]:
        payload = {"messaging_product": "whatsapp", "to": to, **body, **extra}
        return await self.call("POST", f"{PNID}/messages", json=payload)

    async def ok(self, to: str, body: Json, **extra: Any) -> str:
        status, answer = await self.send(to, body, **extra)
        assert status == 200, answer
        return str(answer["messages"][0]["id"])

    async def error(self, to: str, body: Json, **extra: Any) -> tuple[int, Json]:
        status, answer = await self.send(to, body, **extra)
        assert "error" in answer, answer
        return status, answer["error"]

    async def upload(
        self, data: bytes, mime: str, name: str = "f", product: str = "whatsapp"
    ) -> Any:
        form = aiohttp.FormData()
        form.add_field("messaging_product", product)
        if mime:
            form.add_field("type", mime)
        form.add_field("file", data, filename=name, content_type=mime or "application/octet-stream")
        return await self.call("POST", f"{PNID}/media", data=form)


@pytest.fixture
async def graph(emu: WhatsAppEmulator) -> AsyncIterator[Graph]:
    assert emu.base_url is not None
    async with aiohttp.ClientSession() as session:
        yield Graph(session, emu.base_url)


class Receiver:
    """A webhook endpoint: answers verification with the challenge when the verify token
    matches, records every POST (headers, raw body), answers the queued statuses; also
    serves ``/files/{name}`` for media links."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.files: dict[str, bytes] = {}
        self.runner: web.AppRunner | None = None

    async def verification(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == VERIFY:
            return web.Response(text=query["hub.challenge"])
        return web.Response(status=403, text="forbidden")

    async def post(self, request: web.Request) -> web.Response:
        self.posts.append((dict(request.headers), await request.read()))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    async def file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        return web.Response(status=404) if data is None else web.Response(body=data)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/webhook/wa", self.verification)
        app.router.add_post("/webhook/wa", self.post)
        app.router.add_get("/files/{name}", self.file)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def payloads(self) -> list[Json]:
        return [json.loads(body) for _, body in self.posts]

    def values(self) -> list[Json]:
        return [p["entry"][0]["changes"][0]["value"] for p in self.payloads()]

    def statuses(self) -> list[Json]:
        return [s for v in self.values() for s in v.get("statuses", [])]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver()
    yield started
    if started.runner is not None:
        await started.runner.cleanup()


async def subscribed(emu: WhatsAppEmulator, receiver: Receiver) -> str:
    base = await receiver.start()
    url = f"{base}/webhook/wa"
    assert await emu.subscribe(PNID, url, verify_token=VERIFY, app_secret=APP_SECRET)
    return base


def customer(emu: WhatsAppEmulator, text: str = "hello") -> str:
    wa_id = emu.create_user("Olga Ivanova", OLGA)
    emu.user_send(PNID, wa_id, text)
    return wa_id


TEXT = typed("text", {"body": "hi"})


# --- authentication, sending, validation -----------------------------------------------------


async def test_token_errors_and_recorded_calls(emu: WhatsAppEmulator, graph: Graph) -> None:
    body = {"messaging_product": "whatsapp", "to": customer(emu), **TEXT}
    for token, status, code in ((None, 401, 190), ("nope", 401, 190), (OTHER_TOKEN, 400, 100)):
        answer = await graph.call("POST", f"{PNID}/messages", json=body, token=token)
        assert (answer[0], answer[1]["error"]["code"]) == (status, code)
    error = answer[1]["error"]
    assert (error["type"], error["error_subcode"]) == ("OAuthException", 33)
    assert f"Object with ID '{PNID}' does not exist" in error["message"] and error["fbtrace_id"]
    invalid = (await graph.call("POST", f"{PNID}/messages", json=body, token="nope"))[1]
    assert invalid["error"]["message"] == "Invalid OAuth access token - Cannot parse access token"
    url = f"{graph.base}/v19.0/{PNID}/messages"  # any version is accepted and recorded
    assert (await graph.call("POST", url, json=body))[0] == 200
    assert (
        emu.calls[-1][1:4] == ("messages", "v19.0", PNID) and emu.calls_of("messages")[-1] == body
    )
    assert all(TOKEN not in json.dumps(call.body) for call in emu.calls)
    status, info = await graph.call("GET", PNID)
    assert (status, info["display_phone_number"], info["id"]) == (200, "+15550783881", PNID)
    async with graph.http.get(f"{graph.base}/latest/{PNID}") as response:
        assert response.status == 404
    assert (await graph.error("15550783881", TEXT))[1]["code"] == 131021  # to itself


async def test_text_send_answer_and_wamid(emu: WhatsAppEmulator, graph: Graph) -> None:
    wa_id = customer(emu)
    status, answer = await graph.send(
        "+" + wa_id, typed("text", {"body": "Hi", "preview_url": True})
    )
    message_id = answer["messages"][0]["id"]
    assert (status, answer) == (
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+" + wa_id, "wa_id": wa_id}],
            "messages": [{"id": message_id}],
        },
    )
    raw = base64.b64decode(message_id.removeprefix("wamid."), validate=True)
    assert message_id.startswith("wamid.") and wa_id.encode() in raw
    history = emu.conversation(PNID, wa_id)
    assert history[0]["id"].startswith("wamid.") and history[0]["id"] != message_id
    assert [(m["direction"], m["type"], m["body"]) for m in history] == [
        ("in", "text", "hello"),
        ("out", "text", "Hi"),
    ]
    assert [s["status"] for s in history[1]["statuses"]] == ["sent", "delivered"]
    assert history[1]["status"] == "delivered"
    assert (await graph.send(wa_id, {"text": {"body": "type defaults to text"}}))[0] == 200


BUTTONS_21 = {"buttons": [button("a", "t" * 21)]}
TWINS = {"buttons": [button("a", "A"), button("a", "B")]}
ROWS_11 = {"button": "Menu", "sections": [{"rows": rows(11)}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messaging_product": None}, "The parameter messaging_product is required."),
        (
            {"messaging_product": "sms"},
            'Param messaging_product must be one of {WHATSAPP} - got "sms"',
        ),
        ({"to": None}, "The parameter to is required."),
        ({"to": "not a phone"}, "Param to must be a phone number"),
        ({"recipient_type": "group"}, "Param recipient_type must be one of {INDIVIDUAL}"),
        ({"type": "poll"}, "Param type must be one of {AUDIO, CONTACTS"),
        ({"text": None}, "The parameter text is required."),
        ({"text": {}}, "The parameter text['body'] is required."),
        (typed("text", {"body": "x" * 4097}), "Param text['body'] must be at most 4096 characters"),
        (typed("text", {"body": "a", "preview_url": 1}), "text['preview_url'] must be a boolean."),
        (typed("image", {"id": "1", "link": "http://h/x.png"}), "exactly one of 'id' or 'link'"),
        (typed("image", {"link": "ftp://x/y.png"}), "image['link'] must be an HTTP or HTTPS URL."),
        (typed("audio", {"id": "1", "caption": "no"}), "Param audio['caption'] is not supported"),
        (typed("image", {"id": "1", "caption": "c" * 1025}), "at most 1024 characters"),
        (typed("image", {"id": "1", "filename": "a.png"}), "only supported for document"),
        (typed("location", {"latitude": 91, "longitude": 0}), "between -90 and 90."),
        (typed("location", {"latitude": 1}), "The parameter location['longitude'] is required."),
        (typed("contacts", []), "Param contacts must be a non-empty array."),
        (typed("contacts", [{"name": {}}]), "contacts[0]['name']['formatted_name'] is required."),
        (typed("interactive", {"type": "carousel"}), "interactive['type'] must be one of {BUTTON"),
        (ask("button", {"buttons": []}), "must be an array of 1 to 3 buttons."),
        (ask("button", BUTTONS_21), "['reply']['title'] must be at most 20 characters long."),
        (ask("button", TWINS), "Buttons must have unique ids and titles."),
        (ask("list", ROWS_11), "rows in all sections must be at most 10."),
        (typed("template", {"name": "x"}), "The parameter template['language'] is required."),
        (typed("reaction", {"message_id": "x"}), "The parameter reaction['emoji'] is required."),
        ({"context": {}}, "The parameter context['message_id'] is required."),
    ],
)
async def test_validation_errors(
    emu: WhatsAppEmulator, graph: Graph, body: Json, message: str
) -> None:
    payload = {"messaging_product": "whatsapp", "to": customer(emu), **TEXT, **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    status, answer = await graph.call("POST", f"{PNID}/messages", json=payload)
    error = answer["error"]
    assert (status, error["code"]) == (400, 100), answer
    assert error["message"].startswith("(#100) ") and message in error["message"]
    assert message in error["error_data"]["details"]
    status, answer = await graph.call("POST", f"{PNID}/messages", data=b"not json")
    assert (status, answer["error"]["code"]) == (400, 100)


async def test_every_message_type(emu: WhatsAppEmulator, graph: Graph) -> None:
    wa_id = customer(emu, "show me everything")
    inbound = emu.conversation(PNID, wa_id)[0]["id"]
    ids = {}
    for kind, data, mime in (
        ("image", PNG, "image/png"),
        ("document", b"%PDF-1.4 invoice", "application/pdf"),
        ("audio", b"ID3 music", "audio/mpeg"),
        ("video", b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
        ("sticker", b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    ):
        status, answer = await graph.upload(data, mime)
        assert status == 200 and answer["id"].isdigit(), answer
        ids[kind] = answer["id"]
    card = {"name": {"formatted_name": "Support"}, "phones": [{"phone": "+15550001111"}]}
    menu = {"button": "Open", "sections": [{"title": "All", "rows": rows(10)}]}
    for body in (
        typed("image", {"id": ids["image"], "caption": "Your photo"}),
        typed("document", {"id": ids["document"], "filename": "Счёт.pdf", "caption": "Invoice"}),
        typed("audio", {"id": ids["audio"]}),
        typed("video", {"id": ids["video"], "caption": "Clip"}),
        typed("sticker", {"id": ids["sticker"]}),
        typed("location", {"latitude": "55.75", "longitude": 37.62, "name": "Shop"}),
        typed("contacts", [card]),
        ask("button", {"buttons": [button(f"b{i}", f"Option {i}") for i in range(3)]}, "Pick one"),
        ask("list", menu),
        typed("reaction", {"message_id": inbound, "emoji": "👍"}),
        typed("text", {"body": "Quoted"}) | {"context": {"message_id": inbound}},
    ):
        await graph.ok(wa_id, body)
    history = emu.conversation(PNID, wa_id)[1:]
    assert [m["type"] for m in history] == [
        *("image", "document", "audio", "video", "sticker", "location", "contacts"),
        *("interactive", "interactive", "reaction", "text"),
    ]
    image, document = history[0], history[1]
    assert (image["caption"], image["mime_type"]) == ("Your photo", "image/png")
    assert image["media"] == PNG
    assert (document["filename"], document["caption"]) == ("Счёт.pdf", "Invoice")
    assert document["media"] == b"%PDF-1.4 invoice"
    assert history[5]["payload"]["latitude"] == 55.75
    assert history[6]["payload"]["contacts"] == [card]
    assert history[7]["body"] == "Pick one" and history[8]["payload"]["type"] == "list"
    assert history[9]["payload"] == {"message_id": inbound, "emoji": "👍"}
    assert history[10]["context"] == {"id": inbound}
    assert all(m["status"] == "delivered" for m in history)
    # Media ids must be this business's, of a type that fits (any type goes as a document).
    assert (await graph.error(wa_id, typed("image", {"id": "123"})))[1]["code"] == 100
    _, error = await graph.error(wa_id, typed("image", {"id": ids["document"]}))
    assert (error["code"], error["message"]) == (131053, "(#131053) Media upload error")
    await graph.ok(wa_id, typed("document", {"id": ids["image"]}))
    _, error = await graph.error(wa_id, typed("reaction", {"message_id": "wamid.x", "emoji": "x"}))
    assert "not a message of this conversation" in error["message"]


async def test_mark_read(emu: WhatsAppEmulator, graph: Graph) -> None:
    wa_id = customer(emu, "first")
    second = emu.user_send(PNID, wa_id, "second")["id"]
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": second}
    body["typing_indicator"] = {"type": "text"}
    assert await graph.call("POST", f"{PNID}/messages", json=body) == (200, {"success": True})
    marks = [(m["message_id"], m["wa_id"], m["typing_indicator"]) for m in emu.read_marks(PNID)]
    assert marks == [(second, wa_id, True)] and emu.calls_of("messages")[-1] == body
    assert all(m["read_by_business"] for m in emu.conversation(PNID, wa_id))
    body["message_id"] = "wamid.unknown"
    status, answer = await graph.call("POST", f"{PNID}/messages", json=body)
    assert (status, answer["error"]["code"]) == (400, 100)


# --- media ------------------------------------------------------------------------------------


async def test_media_upload_get_download_and_delete(emu: WhatsAppEmulator, graph: Graph) -> None:
    media_id = (await graph.upload(PNG, "image/png", "photo.png"))[1]["id"]
    assert emu.calls_of("media")[-1] == {
        "messaging_product": "whatsapp",
        "type": "image/png",
        "file": {"filename": "photo.png", "size": len(PNG)},
    }
    status, info = await graph.call("GET", media_id)
    assert (status, info) == (
        200,
        {
            "messaging_product": "whatsapp",
            "url": info["url"],
            "mime_type": "image/png",
            "sha256": hashlib.sha256(PNG).hexdigest(),
            "file_size": len(PNG),
            "id": media_id,
        },
    )
    assert info["url"].startswith(f"{graph.base}/whatsapp_business/attachments/?mid={media_id}")
    assert await graph.call("GET", info["url"]) == (200, PNG)
    status, answer = await graph.call("GET", info["url"], token=None)
    assert (status, answer["error"]["code"]) == (401, 190)
    assert (await graph.call("GET", info["url"], token=OTHER_TOKEN))[0] == 400
    assert (await graph.call("GET", info["url"].replace("hash=", "hash=0")))[0] == 404
    # Another business's token cannot see the file; a wrong phone_number_id neither.
    status, answer = await graph.call("GET", media_id, token=OTHER_TOKEN)
    assert (status, answer["error"]["error_subcode"]) == (400, 33)
    assert (await graph.call("GET", f"{media_id}?phone_number_id={OTHER_PNID}"))[0] == 400
    emu.advance(301)  # URLs expire after 5 minutes of the emulator's clock
    assert (await graph.call("GET", info["url"]))[0] == 404
    info = (await graph.call("GET", media_id))[1]
    assert await graph.call("GET", info["url"]) == (200, PNG)
    assert await graph.call("DELETE", media_id) == (200, {"success": True})
    status, answer = await graph.call("GET", media_id)
    assert (status, answer["error"]["code"]) == (400, 100)


async def test_media_upload_errors(emu: WhatsAppEmulator, graph: Graph) -> None:
    status, answer = await graph.upload(b"PK\x03\x04", "application/zip")
    assert (status, answer["error"]["code"]) == (400, 100)
    assert "Param file must be a file with one of the following types" in answer["error"]["message"]
    status, answer = await graph.upload(b"RIFF" + b"\x00" * 600_000, "image/webp")
    assert (status, answer["error"]["code"]) == (400, 131053)
    assert "sticker limit of 512000 bytes" in answer["error"]["error_data"]["details"]
    answer = (await graph.upload(PNG, ""))[1]
    assert answer["error"]["message"] == "(#100) The parameter type is required."
    assert (await graph.upload(PNG, "image/png", product="sms"))[1]["error"]["code"] == 100


async def test_customer_media_is_downloadable(
    emu: WhatsAppEmulator, graph: Graph, receiver: Receiver
) -> None:
    await subscribed(emu, receiver)
    wa_id = emu.create_user("Olga", OLGA)
    photo = emu.user_send(PNID, wa_id, image=PNG, caption="my order")
    doc = emu.user_send(PNID, wa_id, document=("scan.pdf", b"%PDF scan"))
    voice = emu.user_send(PNID, wa_id, audio=b"OggS voice", voice=True)
    await emu.webhooks_idle()
    assert [v["messages"][0] for v in receiver.values()] == [photo, doc, voice]
    assert photo["image"] == {
        "caption": "my order",
        "mime_type": "image/png",
        "sha256": hashlib.sha256(PNG).hexdigest(),
        "id": photo["image"]["id"],
    }
    assert doc["document"]["filename"] == "scan.pdf"
    assert doc["document"]["mime_type"] == "application/pdf"
    assert voice["audio"]["voice"] is True
    assert voice["audio"]["mime_type"] == "audio/ogg; codecs=opus"
    for media, data in ((photo["image"], PNG), (doc["document"], b"%PDF scan")):
        info = (await graph.call("GET", media["id"]))[1]
        assert await graph.call("GET", info["url"]) == (200, data)
    info = (await graph.call("GET", voice["audio"]["id"]))[1]
    assert await graph.call("GET", info["url"]) == (200, b"OggS voice")


async def test_media_links_are_fetched_and_failures_reported(
    emu: WhatsAppEmulator, graph: Graph, receiver: Receiver
) -> None:
    base = await subscribed(emu, receiver)
    receiver.files["logo.png"] = PNG
    wa_id = customer(emu)
    good = await graph.ok(wa_id, typed("image", {"link": f"{base}/files/logo.png", "caption": "L"}))
    missing = await graph.ok(wa_id, typed("image", {"link": f"{base}/files/nope.png"}))
    remote = await graph.ok(wa_id, typed("document", {"link": "https://example.com/a.pdf"}))
    await emu.webhooks_idle()
    history = {m["id"]: m for m in emu.conversation(PNID, wa_id)}
    assert history[good]["media"] == PNG and history[good]["status"] == "delivered"
    assert history[good]["mime_type"] == "image/png"
    assert (history[missing]["status"], history[remote]["status"]) == ("failed", "failed")
    failed = {s["id"]: s for s in receiver.statuses() if s["status"] == "failed"}
    assert set(failed) == {missing, remote}
    error = failed[missing]["errors"][0]
    assert (error["code"], error["title"]) == (131053, "Media upload error")
    assert "http code 404" in error["error_data"]["details"]
    assert [s["status"] for s in receiver.statuses() if s["id"] == missing] == ["failed"]


# --- the 24-hour window and templates -------------------------------------------------------------


async def test_customer_service_window_and_templates(
    emu: WhatsAppEmulator, graph: Graph, receiver: Receiver
) -> None:
    await subscribed(emu, receiver)
    wa_id = emu.create_user("Olga", OLGA)
    status, error = await graph.error(wa_id, TEXT)  # never wrote
    assert (status, error["code"]) == (400, 131047)
    assert error["message"] == "(#131047) Re-engagement message"
    assert error["error_data"] == {"messaging_product": "whatsapp", "details": WINDOW_DETAILS}
    emu.user_send(PNID, wa_id, "hello")
    await graph.ok(wa_id, TEXT)
    emu.advance(24 * 3600 - 5)
    await graph.ok(wa_id, TEXT)
    emu.advance(10)
    assert (await graph.error(wa_id, TEXT))[1]["code"] == 131047
    status, answer = await graph.send(wa_id, template("order_ready", "Olga", "#42"))
    assert status == 200 and answer["messages"][0]["message_status"] == "accepted"
    sent = emu.conversation(PNID, wa_id)[-1]
    assert sent["body"] == "Hello Olga, your order #42 is ready"
    assert sent["template"] == {
        "name": "order_ready",
        "language": "en_US",
        "params": ["Olga", "#42"],
        "category": "utility",
    }
    _, error = await graph.error(wa_id, template("no_such", "a", "b"))
    expected = "(#132001) Template name does not exist in the translation"
    assert (error["code"], error["message"]) == (132001, expected)
    emu.create_template("pending_one", status="PENDING")
    for body in (template("order_ready", "a", "b", language="ru"), template("pending_one", "a")):
        assert (await graph.error(wa_id, body))[1]["code"] == 132001
    _, error = await graph.error(wa_id, template("order_ready", "Olga"))
    assert error["code"] == 132000
    assert error["error_data"]["details"] == (
        "body: number of localizable_params (1) does not match the expected number of params (2)"
    )
    emu.user_send(PNID, wa_id, "thanks")  # the customer answers: the window is open again
    await graph.ok(wa_id, TEXT)
    # A template to someone who is not on WhatsApp is accepted, then fails with 131026.
    stranger = await graph.ok("15550009999", template("order_ready", "a", "b"))
    await emu.webhooks_idle()
    (failed,) = [s for s in receiver.statuses() if s["id"] == stranger]
    assert (failed["status"], failed["errors"][0]["code"]) == ("failed", 131026)


async def test_window_errors_can_be_asynchronous(
    emu: WhatsAppEmulator, graph: Graph, receiver: Receiver
) -> None:
    await subscribed(emu, receiver)
    emu.window_errors = "async"
    message_id = await graph.ok(emu.create_user("Olga", OLGA), TEXT)
    await emu.webhooks_idle()
    (status,) = receiver.statuses()
    assert (status["id"], status["status"], status["recipient_id"]) == (message_id, "failed", OLGA)
    assert status["errors"][0]["code"] == 131047
    assert status["errors"][0]["error_data"]["details"] == WINDOW_DETAILS


# --- webhooks -----------------------------------------------------------------------------------


async def test_webhook_verification(emu: WhatsAppEmulator, receiver: Receiver) -> None:
    base = await receiver.start()
    url = f"{base}/webhook/wa"
    assert not await emu.subscribe(PNID, url, verify_token="wrong", app_secret=APP_SECRET)
    assert not await emu.subscribe(PNID, f"{base}/x", verify_token=VERIFY, app_secret=APP_SECRET)
    assert await emu.subscribe(PNID, url, verify_token=VERIFY, app_secret=APP_SECRET)
    log = [(e["kind"], e["status"], e["ok"]) for e in emu.callback_log]
    assert log == [
        ("verification", 403, False),
        ("verification", 404, False),
        ("verification", 200, True),
    ]
    query = emu.callback_log[-1]["payload"]
    assert (query["hub.mode"], query["hub.verify_token"]) == ("subscribe", VERIFY)
    assert query["hub.challenge"].isdigit()
    assert emu.callback_log[-1]["body"] == query["hub.challenge"]
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        await emu.subscribe(PNID, "https://example.com/h", verify_token=VERIFY, app_secret="s")


async def test_signed_webhooks_and_statuses(
    emu: WhatsAppEmulator, graph: Graph, receiver: Receiver
) -> None:
    await subscribed(emu, receiver)
    wa_id = emu.create_user("Ольга", OLGA)
    sent = emu.user_send(PNID, wa_id, "Где мой заказ?")
    await emu.webhooks_idle()
    headers, raw = receiver.posts[0]
    expected = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected == signature(raw, APP_SECRET)
    assert headers["Content-Type"] == "application/json"
    assert b"\\u0413" in raw  # non-ASCII is escaped, as Meta does: verify the raw bytes
    message = {"from": wa_id, "id": sent["id"], "timestamp": sent["timestamp"], "type": "text"}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PNID},
        "contacts": [{"profile": {"name": "Ольга"}, "wa_id": wa_id}],
        "messages": [message | {"text": {"body": "Где мой заказ?"}}],
    }
    change = {"value": value, "field": "messages"}
    assert receiver.payloads() == [
        {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [change]}]}
    ]
    assert sent["timestamp"] == str(int(sent["timestamp"]))
    reply = await graph.ok(wa_id, typed("text", {"body": "Едет"}))
    await emu.webhooks_idle()
    assert [(s["id"], s["status"]) for s in receiver.statuses()] == [
        (reply, "sent"),
        (reply, "delivered"),
    ]
    first = receiver.statuses()[0]
    assert first["recipient_id"] == wa_id and first["timestamp"].isdigit()
    assert first["pricing"]["category"] == "service"
    assert "expiration_timestamp" in first["conversation"]
    emu.user_reads(PNID, wa_id, reply)
    await emu.webhooks_idle()
    last = receiver.statuses()[-1]
    assert (last["id"], last["status"]) == (reply, "read") and "pricing" not in last
    for headers, raw in receiver.posts:
        assert headers[SIGNATURE_HEADER] == signature(raw, APP_SECRET)
    found = await emu.wait_for(lambda m: m["status"] == "read", phone_number_id=PNID, wa_id=wa_id)
    assert found["id"] == reply


async def test_manual_delivery_and_customer_replies(
    emu: WhatsAppEmulator, graph: Graph, receiver: Receiver
) -> None:
    await subscribed(emu, receiver)
    emu.auto_deliver = False
    wa_id = customer(emu)
    question = await graph.ok(wa_id, ask("button", {"buttons": [button("yes", "Yes")]}))
    assert emu.conversation(PNID, wa_id)[-1]["status"] == "sent"
    emu.user_receives(PNID, wa_id, question)
    answer = emu.user_send(PNID, wa_id, button_reply=("yes", "Yes"))
    assert answer["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "yes", "title": "Yes"},
    }
    assert (answer["type"], answer["context"]) == (
        "interactive",
        {"from": "15550783881", "id": question},
    )
    reaction = emu.user_send(PNID, wa_id, reaction=(question, "❤️"))
    assert reaction["reaction"] == {"message_id": question, "emoji": "❤️"}
    quote = emu.user_send(PNID, wa_id, "this one", reply_to=answer["id"])
    assert quote["context"] == {"from": wa_id, "id": answer["id"]}
    odd = emu.user_send(PNID, wa_id, unsupported=True)
    assert odd["type"] == "unsupported" and odd["errors"][0]["code"] == 131051
    place = emu.user_send(PNID, wa_id, location=(55.75, 37.62))
    assert place["location"] == {"latitude": 55.75, "longitude": 37.62}
    card = emu.user_send(PNID, wa_id, contacts=[("Ivan Petrov", "+7 916 000-00-01")])
    assert card["contacts"][0]["phones"][0]["wa_id"] == "79160000001"
    with pytest.raises(ValueError, match="no interactive message"):
        emu.user_send(PNID, wa_id, button_reply=("maybe", "Maybe"))
    with pytest.raises(ValueError, match="one thing at a time"):
        emu.user_send(PNID, wa_id, image=PNG, video=b"v")
    await emu.webhooks_idle()
    assert [(s["id"], s["status"]) for s in receiver.statuses()] == [
        (question, "sent"),
        (question, "delivered"),
    ]


async def test_batched_webhook(emu: WhatsAppEmulator, receiver: Receiver) -> None:
    await subscribed(emu, receiver)
    olga, ivan = emu.create_user("Olga", OLGA), emu.create_user("Ivan")
    batch = [(olga, {"text": "one"}), (ivan, {"text": "two"}), (olga, {"image": PNG})]
    sent = emu.user_send_batch(PNID, batch)
    await emu.webhooks_idle()
    (value,) = receiver.values()
    assert value["contacts"] == [
        {"profile": {"name": "Olga"}, "wa_id": olga},
        {"profile": {"name": "Ivan"}, "wa_id": ivan},
    ]
    assert value["messages"] == sent
    assert [(m["from"], m["type"]) for m in sent] == [
        (olga, "text"),
        (ivan, "text"),
        (olga, "image"),
    ]


async def test_webhook_retries_and_giving_up(emu: WhatsAppEmulator, receiver: Receiver) -> None:
    await subscribed(emu, receiver)
    receiver.answers = [500, 503, 200]
    wa_id = customer(emu, "retry me")
    await emu.webhooks_idle()
    attempts = [(e["kind"], e["attempt"], e["status"], e["ok"]) for e in emu.callback_log[1:]]
    assert attempts == [
        ("messages", 1, 500, False),
        ("messages", 2, 503, False),
        ("messages", 3, 200, True),
    ]
    payloads = receiver.payloads()
    assert len(payloads) == 3 and payloads[0] == payloads[2]
    receiver.answers = [500] * 10
    emu.user_send(PNID, wa_id, "lost")
    await emu.webhooks_idle()
    assert [e["attempt"] for e in emu.callback_log[4:]] == [1, 2, 3, 4]


async def test_webhook_configuration_through_the_api(
    emu: WhatsAppEmulator, graph: Graph, receiver: Receiver
) -> None:
    url = f"{await receiver.start()}/webhook/wa"
    config = {"override_callback_uri": url, "verify_token": "bad"}
    status, answer = await graph.call("POST", PNID, json={"webhook_configuration": config})
    assert (status, answer["error"]["code"]) == (400, 2200)
    config["verify_token"] = VERIFY
    answer = await graph.call("POST", PNID, json={"webhook_configuration": config})
    assert answer == (200, {"success": True})
    info = (await graph.call("GET", f"{PNID}?fields=webhook_configuration"))[1]
    assert info["webhook_configuration"] == {"phone_number": url}
    customer(emu)
    await emu.webhooks_idle()
    headers, raw = receiver.posts[0]
    assert headers[SIGNATURE_HEADER] == signature(raw, emu.app_secret(PNID))
    assert emu.app_secret(PNID) == "api-app-secret"
    config["override_callback_uri"] = ""
    answer = await graph.call("POST", PNID, json={"webhook_configuration": config})
    assert answer == (200, {"success": True})


# --- faults and limits -------------------------------------------------------------------------


async def test_faults_and_limits(emu: WhatsAppEmulator, graph: Graph) -> None:
    wa_id = customer(emu)
    emu.fail("messages", 131000)
    status, error = await graph.error(wa_id, TEXT)
    assert (status, error["code"], error["message"]) == (
        500,
        131000,
        "(#131000) Something went wrong",
    )
    emu.fail("messages", 130429, times=2)
    for _ in range(2):
        assert [(s, e["code"]) for s, e in [await graph.error(wa_id, TEXT)]] == [(429, 130429)]
    emu.fail("messages", 131026, details="Receiver is incapable of receiving this message")
    _, error = await graph.error(wa_id, TEXT)
    assert error["error_data"]["details"] == "Receiver is incapable of receiving this message"
    emu.fail_http("*", 502)
    status, body = await graph.call("GET", PNID)
    assert status == 502 and b"Bad Gateway" in body
    media = (await graph.upload(PNG, "image/png"))[1]
    emu.fail_http("media_get", 503)
    assert (await graph.call("GET", media["id"]))[0] == 503
    emu.fail("download", 131000, http_status=503)
    info = (await graph.call("GET", media["id"]))[1]
    status, answer = await graph.call("GET", info["url"])
    assert (status, answer["error"]["code"]) == (503, 131000)
    await graph.ok(wa_id, TEXT)
    with pytest.raises(ValueError, match="endpoint"):
        emu.fail("nowhere", 1)
    emu.mps_limit = 1  # throughput of one number
    await graph.ok(wa_id, TEXT)
    assert (await graph.error(wa_id, TEXT))[0] == 429
    emu.mps_limit, emu.pair_limit = None, 2  # messages to one customer within 6 s
    await graph.ok(wa_id, TEXT)
    await graph.ok(wa_id, TEXT)
    _, error = await graph.error(wa_id, TEXT)
    expected = "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    assert (error["code"], error["message"]) == (131056, expected)
    emu.advance(6)
    await graph.ok(wa_id, TEXT)


# --- console API ------------------------------------------------------------------------------


async def test_control_api(emu: WhatsAppEmulator, graph: Graph) -> None:
    async def control(method: str, path: str, body: Json | None = None) -> tuple[int, Any]:
        url = f"{graph.base}/_control/{path}"
        async with graph.http.request(method, url, json=body) as response:
            return response.status, await response.json()

    user = await control("POST", "users", {"name": "Olga", "wa_id": OLGA})
    assert user == (200, {"wa_id": OLGA, "name": "Olga"})
    file = {
        "name": "p.png",
        "mime_type": "image/png",
        "content_b64": base64.b64encode(PNG).decode(),
    }
    where = {"phone_number_id": PNID, "wa_id": OLGA}
    status, sent = await control(
        "POST", "send", {**where, "kind": "image", "file": file, "caption": "c"}
    )
    assert status == 200 and sent["image"]["caption"] == "c"
    reply = await graph.ok(OLGA, TEXT)
    assert (await control("POST", "read", {**where, "message_id": reply}))[0] == 200
    conversation = (await control("GET", f"conversations/{PNID}/{OLGA}"))[1]
    assert conversation["window_open"] is True
    assert [(m["direction"], m["size"], m["status"]) for m in conversation["messages"]] == [
        ("in", len(PNG), None),
        ("out", None, "read"),
    ]
    state = (await control("GET", "state"))[1]
    assert state["numbers"][0]["id"] == PNID and TOKEN not in json.dumps(state)
    events = (await control("GET", "events?after=0&timeout=0"))[1]["events"]
    assert {"message", "status"} <= {e["type"] for e in events}
    await control("POST", "advance", {"seconds": 24 * 3600 + 1})
    assert (await control("GET", f"conversations/{PNID}/{OLGA}"))[1]["window_open"] is False
    status, answer = await control("POST", "send", {"phone_number_id": PNID, "wa_id": "nobody"})
    assert status == 400 and "unknown user" in answer["error"]
    answer = (await control("POST", "faults", {"endpoint": "messages", "code": 131000}))[1]
    assert answer == {"ok": True, "pending": 1}
    assert (await control("POST", "faults", {"clear": True}))[1]["pending"] == 0
