"""The sandbox web console: page, config, static files and the token-hiding customer_send proxy.

The emulator's control API is replaced by a small stub mounted at ``/sandbox/telegram`` inside the
console app, which is how the sandbox serves them (one origin). The stub records every call.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from gateway.sandbox.console import (
    STATIC_DIR,
    ConsoleBot,
    ConsoleOperator,
    ConsoleSettings,
    ConsoleViberBot,
    ConsoleVkGroup,
    ConsoleWhatsAppNumber,
    make_console_app,
)

EMULATOR_PATH = "/sandbox/telegram"
SHOP = ConsoleBot(account="shop", bot_id=111, username="shop_bot", token="111:SHOP-SECRET-TOKEN")
CAFE = ConsoleBot(account="cafe", bot_id=222, username="cafe_bot", token="222:CAFE-SECRET-TOKEN")
SETTINGS = ConsoleSettings(
    emulator_path=EMULATOR_PATH,
    customer_bots=(SHOP, CAFE),
    staff_chat_id=-1001234567890,
    operators=(ConsoleOperator(user_id=501, name="Alice"), ConsoleOperator(502, "Bob")),
    vk_path="sandbox/vk/",
    vk_groups=(ConsoleVkGroup(account="vk_shop", group_id=123456, name="Shop in VK"),),
    viber_path="/sandbox/viber/",
    viber_bots=(
        ConsoleViberBot(account="viber_shop", bot_id="pa:5012345678901234567", name="Shop"),
    ),
    whatsapp_path="sandbox/whatsapp/",
    whatsapp_numbers=(
        ConsoleWhatsAppNumber(account="wa_shop", phone_number_id="106540352242922", name="Shop"),
    ),
)


@dataclass
class EmulatorStub:
    """Records control-API calls and answers with canned JSON in the documented shapes."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    next_send_error: tuple[int, dict[str, Any]] | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/_control/send", self.send)
        app.router.add_get("/_control/state", self.state)
        return app

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("send", body))
        if self.next_send_error is not None:
            status, payload = self.next_send_error
            self.next_send_error = None
            return web.json_response(payload, status=status)
        user = {"id": body["user_id"], "is_bot": False, "first_name": "Carol"}
        message: dict[str, Any] = {
            "message_id": len(self.calls),
            "from": user,
            "chat": {"id": body["user_id"], "type": "private", "first_name": "Carol"},
            "date": 1_700_000_000,
        }
        if "text" in body:
            message["text"] = body["text"]
        if "file" in body:
            message["document"] = {"file_id": "F1", "file_name": body["file"]["name"]}
        return web.json_response(message)

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response({"bots": [], "users": [], "chats": [], "topics": {}})


@pytest.fixture
def stub() -> EmulatorStub:
    return EmulatorStub()


@pytest.fixture
async def client(stub: EmulatorStub) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = make_console_app(SETTINGS)
    app.add_subapp(EMULATOR_PATH, stub.app())
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_page_is_served(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert "Messenger gateway — sandbox" in html
    assert "/console/static/console.js" in html
    assert "/console/static/console_vk.js" in html
    assert "/console/static/console_viber.js" in html
    assert "/console/static/console_whatsapp.js" in html
    assert "/console/static/console_tabs.js" in html
    assert "/console/static/console.css" in html
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp


async def test_config_has_identities_but_no_tokens(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/console/config.json")
    assert resp.status == 200
    raw = await resp.text()
    for bot in SETTINGS.customer_bots:
        assert bot.token not in raw
        assert bot.token.split(":")[1] not in raw
    assert "token" not in raw
    config = await resp.json()
    assert config["emulator_path"] == EMULATOR_PATH
    assert config["staff_chat_id"] == SETTINGS.staff_chat_id
    assert config["customer_bots"] == [
        {"account": "shop", "bot_id": 111, "username": "shop_bot"},
        {"account": "cafe", "bot_id": 222, "username": "cafe_bot"},
    ]
    assert config["operators"] == [
        {"user_id": 501, "name": "Alice"},
        {"user_id": 502, "name": "Bob"},
    ]
    assert config["vk"] == {
        "path": "/sandbox/vk",
        "groups": [{"account": "vk_shop", "group_id": 123456, "name": "Shop in VK"}],
    }
    assert config["viber"] == {
        "path": "/sandbox/viber",
        "bots": [{"account": "viber_shop", "bot_id": "pa:5012345678901234567", "name": "Shop"}],
    }
    assert config["whatsapp"] == {
        "path": "/sandbox/whatsapp",
        "numbers": [
            {"account": "wa_shop", "phone_number_id": "106540352242922", "name": "Shop"},
        ],
    }


async def test_config_without_vk_channels_has_no_vk_groups() -> None:
    settings = ConsoleSettings(EMULATOR_PATH, (SHOP,), -100, ())
    async with TestClient(TestServer(make_console_app(settings))) as c:
        config = await (await c.get("/console/config.json")).json()
    assert config["vk"] == {"path": "/sandbox/vk", "groups": []}
    assert config["viber"] == {"path": "/sandbox/viber", "bots": []}
    assert config["whatsapp"] == {"path": "/sandbox/whatsapp", "numbers": []}


@pytest.mark.parametrize("bot", [SHOP, CAFE], ids=["shop", "cafe"])
async def test_customer_send_forwards_with_the_right_token(
    client: TestClient[web.Request, web.Application], stub: EmulatorStub, bot: ConsoleBot
) -> None:
    resp = await client.post(
        "/console/customer_send", json={"bot_id": bot.bot_id, "user_id": 7001, "text": "hello"}
    )
    assert resp.status == 200
    message = await resp.json()
    assert message["text"] == "hello"
    assert message["chat"]["id"] == 7001
    assert "token" not in await resp.text()
    assert stub.calls == [("send", {"user_id": 7001, "bot_token": bot.token, "text": "hello"})]


async def test_customer_send_forwards_file_location_and_contact(
    client: TestClient[web.Request, web.Application], stub: EmulatorStub
) -> None:
    content_b64 = base64.b64encode(b"%PDF-1.4 fake").decode()
    file = {"name": "invoice.pdf", "mime_type": "application/pdf", "content_b64": content_b64}
    resp = await client.post(
        "/console/customer_send",
        json={"bot_id": 111, "user_id": 7001, "kind": "document", "file": file, "caption": "see"},
    )
    assert resp.status == 200
    assert (await resp.json())["document"]["file_name"] == "invoice.pdf"
    location = {"latitude": 52.37, "longitude": 4.89}
    contact = {"phone_number": "+15550007001", "first_name": "Carol"}
    assert (
        await client.post(
            "/console/customer_send", json={"bot_id": 111, "user_id": 7001, "location": location}
        )
    ).status == 200
    assert (
        await client.post(
            "/console/customer_send", json={"bot_id": 111, "user_id": 7001, "contact": contact}
        )
    ).status == 200
    sent = [body for _, body in stub.calls]
    assert sent[0] == {
        "user_id": 7001,
        "bot_token": SHOP.token,
        "kind": "document",
        "caption": "see",
        "file": file,
    }
    assert sent[1] == {"user_id": 7001, "bot_token": SHOP.token, "location": location}
    assert sent[2] == {"user_id": 7001, "bot_token": SHOP.token, "contact": contact}


async def test_customer_send_cannot_redirect_the_message_or_pick_a_token(
    client: TestClient[web.Request, web.Application], stub: EmulatorStub
) -> None:
    resp = await client.post(
        "/console/customer_send",
        json={
            "bot_id": 111,
            "user_id": 7001,
            "text": "hi",
            "bot_token": CAFE.token,
            "chat_id": SETTINGS.staff_chat_id,
            "message_thread_id": 5,
        },
    )
    assert resp.status == 200
    assert stub.calls == [("send", {"user_id": 7001, "bot_token": SHOP.token, "text": "hi"})]


async def test_customer_send_large_attachment(
    client: TestClient[web.Request, web.Application], stub: EmulatorStub
) -> None:
    """Photos are posted as base64 JSON, well past aiohttp's default 1 MiB body limit."""
    content_b64 = base64.b64encode(b"\xff" * 3 * 1024 * 1024).decode()
    file = {"name": "big.jpg", "mime_type": "image/jpeg", "content_b64": content_b64}
    body = {"bot_id": 222, "user_id": 7001, "kind": "photo", "file": file}
    resp = await client.post(
        "/console/customer_send",
        data=io.BytesIO(json.dumps(body).encode()),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200
    assert stub.calls[0][1]["file"]["content_b64"] == content_b64


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"bot_id": 999, "user_id": 7001, "text": "x"}, 404),
        ({"bot_id": "111", "user_id": 7001, "text": "x"}, 400),
        ({"bot_id": True, "user_id": 7001, "text": "x"}, 400),
        ({"bot_id": 111, "text": "x"}, 400),
        ({"bot_id": 111, "user_id": 7001}, 400),
        ({"bot_id": 111, "user_id": 7001, "text": 5}, 400),
        ({"bot_id": 111, "user_id": 7001, "file": {"name": "a"}}, 400),
        ({"bot_id": 111, "user_id": 7001, "location": {"latitude": "x", "longitude": 1}}, 400),
        ({"bot_id": 111, "user_id": 7001, "contact": {"phone_number": "1"}}, 400),
        ([1, 2, 3], 400),
    ],
)
async def test_customer_send_rejects_bad_requests(
    client: TestClient[web.Request, web.Application],
    stub: EmulatorStub,
    body: Any,
    status: int,
) -> None:
    resp = await client.post("/console/customer_send", json=body)
    assert resp.status == status
    assert (await resp.json())["ok"] is False
    assert stub.calls == []


async def test_customer_send_rejects_non_json(
    client: TestClient[web.Request, web.Application], stub: EmulatorStub
) -> None:
    resp = await client.post("/console/customer_send", data=b"not json")
    assert resp.status == 400
    assert stub.calls == []


async def test_customer_send_passes_emulator_errors_through(
    client: TestClient[web.Request, web.Application], stub: EmulatorStub
) -> None:
    stub.next_send_error = (400, {"ok": False, "error": "unknown user 7001"})
    resp = await client.post(
        "/console/customer_send", json={"bot_id": 111, "user_id": 7001, "text": "x"}
    )
    assert resp.status == 400
    assert await resp.json() == {"ok": False, "error": "unknown user 7001"}


async def test_customer_send_never_echoes_the_token(
    client: TestClient[web.Request, web.Application], stub: EmulatorStub
) -> None:
    stub.next_send_error = (401, {"ok": False, "error": f"bad token {SHOP.token}"})
    resp = await client.post(
        "/console/customer_send", json={"bot_id": 111, "user_id": 7001, "text": "x"}
    )
    assert resp.status == 401
    assert SHOP.token not in await resp.text()
    assert await resp.json() == {"ok": False, "error": "bad token <bot token>"}


@pytest.mark.parametrize("emulator_path", ["/sandbox/telegram", "sandbox/telegram/"])
async def test_emulator_path_is_normalised(emulator_path: str, stub: EmulatorStub) -> None:
    settings = ConsoleSettings(emulator_path, (SHOP,), -100, ())
    app = make_console_app(settings)
    app.add_subapp(EMULATOR_PATH, stub.app())
    async with TestClient(TestServer(app)) as c:
        config = await (await c.get("/console/config.json")).json()
        assert config["emulator_path"] == EMULATOR_PATH
        resp = await c.post(
            "/console/customer_send", json={"bot_id": 111, "user_id": 1, "text": "x"}
        )
        assert resp.status == 200
    assert stub.calls[0][1]["bot_token"] == SHOP.token


async def test_customer_send_without_emulator_mounted() -> None:
    """The emulator answers 404 with plain text: the console still answers JSON."""
    async with TestClient(TestServer(make_console_app(SETTINGS))) as c:
        resp = await c.post(
            "/console/customer_send", json={"bot_id": 111, "user_id": 1, "text": "x"}
        )
        assert resp.status == 404
        assert (await resp.json())["ok"] is False


async def test_customer_send_ignores_forged_host_header(
    client: TestClient[web.Request, web.Application], stub: EmulatorStub
) -> None:
    """The token is only ever sent to the server's own socket, never to the Host it was told."""
    resp = await client.post(
        "/console/customer_send",
        json={"bot_id": 111, "user_id": 7001, "text": "x"},
        headers={"Host": "attacker.invalid:80"},
    )
    assert resp.status == 200
    assert stub.calls[0][1]["bot_token"] == SHOP.token


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("console.js", "text/javascript"),
        ("console_vk.js", "text/javascript"),
        ("console_whatsapp.js", "text/javascript"),
        ("console.css", "text/css"),
    ],
)
async def test_static_files_have_correct_content_types(
    client: TestClient[web.Request, web.Application], name: str, content_type: str
) -> None:
    resp = await client.get(f"/console/static/{name}")
    assert resp.status == 200
    assert resp.content_type == content_type
    assert resp.charset == "utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await resp.read() == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/nope.js",
        "/console/static/console.html",  # served at "/" only
        "/console/static/console.JS",
        "/console/static/../console.py",
        "/console/static/..%2Fconsole.py",
        "/console/static/%2e%2e%2fconsole.py",
        "/console/static/..%2F..%2F__init__.py",
        "/console/static/%2Fetc%2Fpasswd",
        "/console/static/..%5Cconsole.py",
        "/console/static/.",
        "/console/static/..",
    ],
)
async def test_unknown_or_escaping_static_names_are_404(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    # encoded=True: send the path exactly as written, without client-side normalisation.
    resp = await client.get(URL(path, encoded=True))
    assert resp.status == 404
    body = await resp.read()
    assert b"import" not in body  # no Python source leaked


def test_bot_repr_hides_the_token() -> None:
    assert SHOP.token not in repr(SHOP)
    assert SHOP.token not in repr(SETTINGS)


def test_duplicate_bot_ids_are_rejected() -> None:
    settings = ConsoleSettings(EMULATOR_PATH, (SHOP, SHOP), -100, ())
    with pytest.raises(ValueError, match="unique"):
        make_console_app(settings)


# ---------------------------------------------------------------- static assets sanity


def _asset(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


SCRIPTS = (
    "console.js",
    "console_tabs.js",
    "console_vk.js",
    "console_viber.js",
    "console_whatsapp.js",
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_page_references_only_existing_elements(script: str) -> None:
    """Every $("id") the script looks up exists in the page."""
    ids = set(re.findall(r'\bid="([^"]+)"', _asset("console.html")))
    used = set(re.findall(r'\$\("([\w-]+)"\)', _asset(script)))
    assert used, f"{script} should look elements up by id"
    assert used <= ids, f"missing in console.html: {sorted(used - ids)}"


def test_page_ids_are_unique() -> None:
    ids = re.findall(r'\bid="([^"]+)"', _asset("console.html"))
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_never_injects_html(script: str) -> None:
    js = _asset(script)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js


def test_vk_script_never_needs_a_token() -> None:
    """The VK tab talks to the VK emulator's control API, which takes community ids."""
    js = _asset("console_vk.js")
    assert "token" not in js.lower()
    assert "/method/" not in js


def test_viber_script_never_needs_a_token() -> None:
    """The Viber tab names bots by their public id; message tokens travel as strings."""
    js = _asset("console_viber.js")
    assert "auth_token" not in js and "x-viber-auth-token" not in js.lower()
    assert "/send_message" not in js and "message_token_str" in js


def test_every_tab_has_a_panel() -> None:
    html = _asset("console.html")
    for name in ("telegram", "vk", "viber", "whatsapp"):
        assert f'id="tab-{name}" aria-controls="{name}-customer"' in html
        assert f'id="{name}-customer" role="tabpanel"' in html


def test_assets_work_offline() -> None:
    """No CDN, web fonts or other external resources (links the user may click are fine)."""
    for name in ("console.html", "console.css"):
        text = _asset(name)
        assert "http://" not in text
        assert "https://" not in text
        assert "@import" not in text
    assert "@font-face" not in _asset("console.css")


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_reasonably_small(script: str) -> None:
    assert len(_asset(script).splitlines()) < 600
