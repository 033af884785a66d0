"""The WhatsApp adapter (aiohttp, Graph API) against the Cloud API emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from adapters.base import Upload
from adapters.whatsapp import WhatsAppAdapter
from gateway.config import DeliverySettings, WhatsAppChannel
from gateway.errors import PermanentError, TransientError, Unauthorized
from gateway.model import (
    AccountId,
    Attachment,
    Button,
    ChatId,
    Content,
    Destination,
    InboundMessage,
    Kind,
    Location,
    MessageId,
    SharedContact,
    Template,
)
from gateway.sandbox.whatsapp import WhatsAppEmulator

NUMBER = "106540352242922"
TOKEN = "EAAG-adapter-token"
ACCOUNT = AccountId("wa_shop")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
async def wa() -> AsyncIterator[WhatsAppEmulator]:
    emulator = WhatsAppEmulator()
    await emulator.start()
    emulator.create_number(NUMBER, "15550783881", TOKEN)
    emulator.create_template("order_ready", "en_US", "Hello {{1}}, your order {{2}} is ready")
    try:
        yield emulator
    finally:
        await emulator.stop()


@pytest.fixture
async def adapter(wa: WhatsAppEmulator) -> AsyncIterator[WhatsAppAdapter]:
    settings = WhatsAppChannel(
        id=ACCOUNT,
        kind="whatsapp",
        token=TOKEN,
        phone_number_id=NUMBER,
        app_secret="s",
        verify_token="verify-me",
        api_server=wa.base_url,
    )
    adapter = WhatsAppAdapter(ACCOUNT, settings, DeliverySettings(request_timeout_seconds=5))
    try:
        yield adapter
    finally:
        await adapter.stop()


def to(wa_id: str, reply_to: str | None = None) -> Destination:
    return Destination(
        account=ACCOUNT, chat_id=ChatId(wa_id), reply_to=MessageId(reply_to) if reply_to else None
    )


def test_the_get_handshake_echoes_the_challenge_only_with_the_token(
    adapter: WhatsAppAdapter,
) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "42"}
    assert adapter.challenge(query).body == "42"
    with pytest.raises(Unauthorized):
        adapter.challenge(query | {"hub.verify_token": "guess"})


async def test_sends_every_kind_and_files_by_upload(
    wa: WhatsAppEmulator, adapter: WhatsAppAdapter
) -> None:
    ivan = wa.create_user("Ivan", "79161234567")
    said = wa.user_send(NUMBER, ivan, "Здравствуйте")
    text = Content(kind=Kind.TEXT, text="Добрый день! " * 400)  # two messages
    sent = await adapter.send(to(ivan, said["id"]), text)
    assert len(sent.message_ids) == 2 and sent.message_ids[0].startswith("wamid.")
    photo = Content(
        kind=Kind.PHOTO, text="каталог", attachment=Attachment(account="tg", file_id="x")
    )
    await adapter.send(to(ivan), photo, Upload(data=PNG, file_name="p.png"))
    doc = Content(kind=Kind.DOCUMENT, attachment=Attachment(account="tg", file_id="y"))
    await adapter.send(to(ivan), doc, Upload(data=b"%PDF-1.4", file_name="price.pdf"))
    voice = Content(
        kind=Kind.VOICE,
        attachment=Attachment(account="tg", file_id="z", mime_type="audio/ogg"),
    )
    await adapter.send(to(ivan), voice, Upload(data=b"OggS....", file_name="v.ogg"))
    where = Content(kind=Kind.LOCATION, location=Location(latitude=55.75, longitude=37.62))
    await adapter.send(to(ivan), where)
    card = SharedContact(phone="+79160000000", first_name="Anna")
    await adapter.send(to(ivan), Content(kind=Kind.CONTACT, contact=card))
    choose = Content(
        kind=Kind.TEXT,
        text="Подтвердить заказ?",
        buttons=((Button(text="Да", data="yes"), Button(text="Нет", data="no")),),
    )
    await adapter.send(to(ivan), choose)
    template = Template(name="order_ready", language="en_US", parameters=("Ivan", "48213"))
    await adapter.send(to(ivan), Content(kind=Kind.TEXT, text="preview", template=template))

    out = [m for m in wa.conversation(NUMBER, ivan) if m["direction"] == "out"]
    assert [m["type"] for m in out] == [
        "text",
        "text",
        "image",
        "document",
        "audio",
        "location",
        "contacts",
        "interactive",
        "template",
    ]
    assert said["id"] in str(out[0]["context"])
    assert out[2]["caption"] == "каталог" and out[2]["media"] == PNG
    assert out[3]["filename"] == "price.pdf"
    assert out[8]["template"]["params"] == ["Ivan", "48213"]

    await adapter.mark_read(ChatId(ivan), MessageId(said["id"]))
    assert [m["message_id"] for m in wa.read_marks(NUMBER)] == [said["id"]]


async def test_customers_media_download_with_the_token(
    wa: WhatsAppEmulator, adapter: WhatsAppAdapter
) -> None:
    ivan = wa.create_user("Ivan", "79161234567")
    payload = wa.user_send(NUMBER, ivan, document=("invoice.pdf", b"%PDF-1.4 invoice"))
    file = Attachment(account=ACCOUNT, file_id=payload["document"]["id"], file_name="invoice.pdf")
    got = await adapter.download(file)
    assert got.data == b"%PDF-1.4 invoice" and got.file_name == "invoice.pdf"
    assert await adapter.avatar(ivan) is None


async def test_platform_errors_map_to_permanent_and_transient(
    wa: WhatsAppEmulator, adapter: WhatsAppAdapter
) -> None:
    ivan = wa.create_user("Ivan", "79161234567")
    hello = Content(kind=Kind.TEXT, text="hello")
    with pytest.raises(PermanentError) as window:
        await adapter.send(to(ivan), hello)  # never wrote: outside the 24-hour window
    assert "24 hours" in window.value.reason
    wa.user_send(NUMBER, ivan, "hi")
    wa.fail("messages", 130429, http_status=429)
    with pytest.raises(TransientError) as throughput:
        await adapter.send(to(ivan), hello)
    assert throughput.value.retry_after == 1.0
    wa.fail("messages", 131056, http_status=400)
    with pytest.raises(TransientError) as pair:
        await adapter.send(to(ivan), hello)
    assert pair.value.retry_after == 6.0
    wa.fail_http("messages", 502)
    with pytest.raises(TransientError):
        await adapter.send(to(ivan), hello)
    wa.fail("messages", 190, http_status=401)
    with pytest.raises(PermanentError) as token:
        await adapter.send(to(ivan), hello)
    assert "token" in token.value.reason
    huge = Upload(data=b"\x00" * (100 * 1024 * 1024 + 1), file_name="big.pdf")
    doc = Content(kind=Kind.DOCUMENT, attachment=Attachment(account="tg", file_id="y"))
    with pytest.raises(PermanentError) as too_large:
        await adapter.send(to(ivan), doc, huge)
    assert "100 MB" in too_large.value.reason
    assert (await adapter.send(to(ivan), hello)).message_ids


def test_parse_sees_only_its_own_number(adapter: WhatsAppAdapter) -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "1", "phone_number_id": NUMBER},
        "contacts": [{"profile": {"name": "Ivan"}, "wa_id": "79161234567"}],
        "messages": [
            {
                "from": "79161234567",
                "id": "wamid.A",
                "timestamp": "1",
                "type": "text",
                "text": {"body": "x"},
            }
        ],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    [message] = adapter.parse(payload, NOW)
    assert isinstance(message, InboundMessage) and message.sender.phone == "+79161234567"
