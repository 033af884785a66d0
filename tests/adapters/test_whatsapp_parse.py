"""WhatsApp Cloud API webhooks → model events: every kind, batches, statuses, fuzz."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.whatsapp.parse import parse_webhook
from gateway.errors import BadPayload
from gateway.model import AccountId, InboundMessage, InboundReaction, InboundReceipt, Kind
from tests.strategies import json_values

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NUMBER = "106540352242922"


def parse(payload: Any) -> list[Any]:
    return list(
        parse_webhook(
            payload, account=AccountId("wa_shop"), phone_number_id=NUMBER, received_at=NOW
        )
    )


def webhook(*values: dict[str, Any]) -> dict[str, Any]:
    changes = [
        {
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": NUMBER},
                **value,
            },
        }
        for value in values
    ]
    return {"object": "whatsapp_business_account", "entry": [{"id": "1029", "changes": changes}]}


def messages(*items: dict[str, Any], name: str = "Ivan") -> dict[str, Any]:
    return {
        "contacts": [{"profile": {"name": name}, "wa_id": "79161234567"}],
        "messages": list(items),
    }


def msg(kind: str, body: Any, n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "from": "79161234567",
        "id": f"wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQz{n}",
        "timestamp": "1795460000",
        "type": kind,
        kind: body,
        **extra,
    }


def test_text_from_a_phone_that_feeds_contact_dedup() -> None:
    [m] = parse(webhook(messages(msg("text", {"body": "Здравствуйте"}))))
    assert isinstance(m, InboundMessage)
    assert m.sender.display_name == "Ivan" and m.sender.phone == "+79161234567"
    assert m.sender.user_id == m.sender.chat_id == "79161234567"
    assert m.key == "wa:wa_shop:wamid.HBgLNzkxNjEyMzQ1NjcVAgASGBQz1"
    assert m.sent_at == datetime.fromtimestamp(1795460000, UTC)


def test_every_kind_in_one_batched_post() -> None:
    items = [
        msg("image", {"id": "1001", "mime_type": "image/jpeg", "caption": "чек"}, 1),
        msg(
            "document", {"id": "1002", "filename": "invoice.pdf", "mime_type": "application/pdf"}, 2
        ),
        msg("audio", {"id": "1003", "mime_type": "audio/ogg; codecs=opus", "voice": True}, 3),
        msg("audio", {"id": "1004", "mime_type": "audio/mpeg"}, 4),
        msg("video", {"id": "1005", "mime_type": "video/mp4"}, 5),
        msg("sticker", {"id": "1006", "mime_type": "image/webp", "animated": False}, 6),
        msg("location", {"latitude": 55.75, "longitude": 37.62}, 7),
        msg(
            "location",
            {"latitude": 55.7, "longitude": 37.6, "name": "Shop", "address": "Tverskaya 1"},
            8,
        ),
        msg(
            "contacts",
            [{"name": {"formatted_name": "Anna"}, "phones": [{"phone": "+7 916 000-00-00"}]}],
            9,
        ),
        msg(
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "yes", "title": "Да"}},
            10,
        ),
        msg("button", {"payload": "p", "text": "Подтвердить"}, 11),
        msg("reaction", {"message_id": "wamid.X", "emoji": "👍"}, 12),
        msg("unsupported", {}, 13, errors=[{"code": 131051, "title": "Message type unknown"}]),
        msg("text", {"body": "ответ"}, 14, context={"from": "15550783881", "id": "wamid.Q"}),
    ]
    got = parse(webhook(messages(*items[:7]), messages(*items[7:])))
    [reaction] = [m for m in got if isinstance(m, InboundReaction)]
    assert (reaction.message_id, reaction.emoji) == ("wamid.X", "👍")
    got = [m for m in got if isinstance(m, InboundMessage)]
    kinds = [m.content.kind for m in got]
    assert kinds == [
        Kind.PHOTO, Kind.DOCUMENT, Kind.VOICE, Kind.AUDIO, Kind.VIDEO, Kind.STICKER,
        Kind.LOCATION, Kind.VENUE, Kind.CONTACT, Kind.TEXT, Kind.TEXT,
        Kind.UNSUPPORTED, Kind.TEXT,
    ]  # fmt: skip
    assert got[0].content.text == "чек" and got[0].content.attachment.file_id == "1001"
    assert got[1].content.attachment.file_name == "invoice.pdf"
    assert got[8].content.contact.phone == "+7 916 000-00-00"
    assert got[8].content.contact.user_id is None  # someone else's card: not their phone
    assert got[9].content.text == "Да" and got[10].content.text == "Подтвердить"
    assert got[11].content.text == "[Message type unknown]"
    assert got[12].reply_to == "wamid.Q"
    assert len({m.key for m in got}) == len(got)


def test_statuses_become_receipts_and_other_numbers_are_skipped() -> None:
    statuses = [
        {"id": "wamid.A", "status": "sent", "timestamp": "1", "recipient_id": "79161234567"},
        {"id": "wamid.A", "status": "delivered", "timestamp": "2", "recipient_id": "79161234567"},
        {"id": "wamid.A", "status": "read", "timestamp": "3", "recipient_id": "79161234567"},
        {
            "id": "wamid.B",
            "status": "failed",
            "timestamp": "4",
            "recipient_id": "79161234567",
            "errors": [
                {
                    "code": 131047,
                    "title": "Re-engagement message",
                    "error_data": {"details": "more than 24 hours have passed"},
                }
            ],
        },
    ]
    got = parse(webhook({"statuses": statuses}))
    assert [(r.message_id, r.status) for r in got] == [
        ("wamid.A", "delivered"),
        ("wamid.A", "seen"),
        ("wamid.B", "failed"),
    ]
    assert all(isinstance(r, InboundReceipt) for r in got)
    assert got[2].reason == "more than 24 hours have passed"
    other = webhook(messages(msg("text", {"body": "hi"})))
    other["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    assert parse(other) == []


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        webhook(messages(msg("text", {"body": "x"}) | {"from": "+7916"})),
        webhook(messages(msg("image", {"caption": "no id"}))),
        webhook(messages(msg("location", {"latitude": "north", "longitude": 1}))),
        webhook({"statuses": [{"id": "x", "status": "read"}]}),
    ],
)
def test_malformed_webhooks_are_bad_payloads(payload: Any) -> None:
    with pytest.raises(BadPayload):
        parse(payload)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["text", "image", "audio", "location", "contacts", "interactive", "x"]),
    body=json_values,
    fields=st.dictionaries(
        st.sampled_from(["from", "id", "timestamp", "context", "errors"]), json_values
    ),
    value=st.dictionaries(st.sampled_from(["contacts", "statuses", "metadata"]), json_values),
)
def test_arbitrary_json_never_raises_anything_but_bad_payload(
    kind: str, body: Any, fields: dict[str, Any], value: dict[str, Any]
) -> None:
    with contextlib.suppress(BadPayload):
        parse(webhook(messages(msg(kind, body) | fields), value))
