"""The sandbox console's WhatsApp tab: its script never needs a credential, it explains the
24-hour window, and the WhatsApp emulator's control API gives it what it shows."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.sandbox.console import make_console_app
from gateway.sandbox.whatsapp import WhatsAppEmulator
from tests.sandbox.test_console import SETTINGS, _asset


def test_whatsapp_script_never_needs_a_token() -> None:
    """The WhatsApp tab names numbers by their phone number id and plays the customer through
    the emulator's control API: no access token, app secret or Graph API call."""
    js = _asset("console_whatsapp.js")
    lowered = js.lower()
    for word in ("token", "authorization", "bearer", "app_secret", "graph.facebook", "x-hub"):
        assert word not in lowered
    assert "/messages" not in js and not re.search(r"/v\d+\.\d+/", js)
    assert "/_control" in js and "phone_number_id" in js


def test_whatsapp_tab_explains_the_24_hour_window() -> None:
    """+25 h moves only WhatsApp's clock: the tab says that WhatsApp then refuses (131047), where
    that shows (the staff topic) and what still works (a template)."""
    js = _asset("console_whatsapp.js")
    assert '"/advance"' in js and "WA_HOURS = 25" in js
    assert "131047" in js and "Not delivered" in js and "/template" in js
    assert "real" in js  # the gateway keeps the real time
    html = _asset("console.html")
    assert 'id="whatsapp-advance"' in html and 'id="whatsapp-window"' in html


# ---------------------------------------------------------------- the WhatsApp tab's control API


@pytest.fixture
async def wa_client() -> AsyncIterator[
    tuple[TestClient[web.Request, web.Application], WhatsAppEmulator]
]:
    """The console with the real WhatsApp emulator mounted where the sandbox mounts it."""
    emulator = WhatsAppEmulator()
    emulator.create_number("106540352242922", "+15550783881", "EAAG-NEVER-SHOWN")
    emulator.create_user("Maria", "79161234567")
    app = make_console_app(SETTINGS)
    app.add_subapp("/sandbox/whatsapp", emulator.make_app())
    async with TestClient(TestServer(app)) as c:
        emulator.set_base_url(str(c.make_url("/sandbox/whatsapp")))
        yield c, emulator


async def test_whatsapp_tab_sends_contacts_and_sees_files(
    wa_client: tuple[TestClient[web.Request, web.Application], WhatsAppEmulator],
) -> None:
    client, emulator = wa_client
    who = {"phone_number_id": "106540352242922", "wa_id": "79161234567"}
    card = {**who, "contacts": [{"name": "Maria Sokolova", "phone": "+79161234567"}]}
    resp = await client.post("/sandbox/whatsapp/_control/send", json=card)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["contacts"][0]["name"]["formatted_name"] == "Maria Sokolova"
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
    photo = {**who, "kind": "image", "file": {"name": "a.png", "mime_type": "image/png"}}
    photo["file"]["content_b64"] = png
    sent = await (await client.post("/sandbox/whatsapp/_control/send", json=photo)).json()
    resp = await client.get(f"/sandbox/whatsapp/_control/media/{sent['image']['id']}")
    assert resp.status == 200 and resp.content_type == "image/png"
    assert await resp.read() == base64.b64decode(png)
    # A customer's file that a browser would render as a page is only ever a download.
    page = {"name": "x.html", "mime_type": "text/html", "content_b64": "PHNjcmlwdD4="}
    sent = await (
        await client.post("/sandbox/whatsapp/_control/send", json={**who, "file": page})
    ).json()
    resp = await client.get(f"/sandbox/whatsapp/_control/media/{sent['document']['id']}")
    assert resp.status == 200 and resp.content_type == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == "attachment"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
    assert (await client.get("/sandbox/whatsapp/_control/media/404")).status == 400
    state = await (await client.get("/sandbox/whatsapp/_control/state")).text()
    assert (
        "EAAG-NEVER-SHOWN" not in state and emulator.app_secret(who["phone_number_id"]) not in state
    )
