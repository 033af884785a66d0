"""Formatting crosses messengers (issue 10): Telegram entities ↔ WhatsApp markup ↔
plain text, with Telegram's UTF-16 offsets kept right around emoji — end to end
through the emulators, plus the conversions themselves."""

from __future__ import annotations

from typing import Any

from adapters.markup import from_whatsapp, to_plain, to_whatsapp
from adapters.telegram.styles import from_entities, to_entities
from gateway.model import Content, Kind, Style
from gateway.sandbox.viber import ViberEmulator
from gateway.sandbox.whatsapp import WhatsAppEmulator
from tests.conftest import StartGateway, World, eventually, text_of
from tests.test_reactions import wa_and_viber
from tests.test_viber_flow import TOKEN as VIBER_TOKEN
from tests.test_viber_flow import outgoing, viber
from tests.test_whatsapp_flow import NUMBER, wa

__all__ = ["viber", "wa"]  # fixtures of the Viber and WhatsApp tests, used here too

# "🙂 Заказ №7 готов, трек: link, код `A1`" as an operator formats it in Telegram:
# the emoji is 2 UTF-16 units, so "Заказ" starts at unit 3 but character 2.
SAID = "🙂 Заказ №7 готов, трек: ссылка, код A1"
ENTITIES = [
    {"type": "bold", "offset": 3, "length": 8},  # "Заказ №7"
    {"type": "italic", "offset": 12, "length": 5},  # "готов"
    {"type": "text_link", "offset": 25, "length": 6, "url": "https://track.example/7"},
    {"type": "code", "offset": 37, "length": 2},  # "A1"
    {"type": "mention", "offset": 0, "length": 2},  # not formatting: dropped
]


def formatted(message: dict[str, Any], key: str = "entities") -> list[tuple[str, str]]:
    """(type, covered text) of a Telegram message's entities."""
    text = message.get("text") or message.get("caption") or ""
    units = text.encode("utf-16-le")
    return [
        (e["type"], units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le"))
        for e in message.get(key) or []
    ]


def test_telegram_entities_become_styles_and_back() -> None:
    styles = from_entities(SAID, ENTITIES)
    assert [(s.kind, SAID[s.offset : s.offset + s.length]) for s in styles] == [
        ("bold", "Заказ №7"),
        ("italic", "готов"),
        ("link", "ссылка"),
        ("code", "A1"),
    ]
    back = to_entities(Content(kind=Kind.TEXT, text=SAID, styles=styles)) or []
    assert [(e.type, e.offset, e.length, e.url) for e in back] == [
        ("bold", 3, 8, None),
        ("italic", 12, 5, None),
        ("text_link", 25, 6, "https://track.example/7"),
        ("code", 37, 2, None),
    ]


def test_whatsapp_markup_both_ways_and_plain_text() -> None:
    styles = from_entities(SAID, ENTITIES)
    assert to_whatsapp(SAID, styles) == (
        "🙂 *Заказ №7* _готов_, трек: ссылка (https://track.example/7), код `A1`"
    )
    assert (
        to_plain(SAID, styles)
        == "🙂 Заказ №7 готов, трек: ссылка (https://track.example/7), код A1"
    )
    # Spaces at a span's ends move outside the markers; nested spans close inside out.
    both = [Style(kind="bold", offset=0, length=6), Style(kind="italic", offset=0, length=11)]
    assert to_whatsapp("very  good one", both) == "_*very*  good_ one"
    assert to_whatsapp("> no\nyes", [Style(kind="quote", offset=0, length=8)]) == "> > no\n> yes"
    text, found = from_whatsapp("*Срочно*: _сегодня_ ~завтра~ `код`, snake_case и 2*3*4")
    assert text == "Срочно: сегодня завтра код, snake_case и 2*3*4"
    assert [(s.kind, text[s.offset : s.offset + s.length]) for s in found] == [
        ("bold", "Срочно"),
        ("italic", "сегодня"),
        ("strike", "завтра"),
        ("code", "код"),
    ]
    text, found = from_whatsapp("*_оба_* и ```блок\nкода```")
    assert text == "оба и блок\nкода"
    assert sorted(s.kind for s in found) == ["bold", "italic", "pre"]


async def test_formatting_survives_telegram_both_ways(
    world: World, start_gateway: StartGateway
) -> None:
    await start_gateway()
    ivan = world.customer()
    await world.say(ivan, text=SAID, entities=ENTITIES)
    copy = await world.in_staff(lambda m: text_of(m) == SAID)
    assert formatted(copy) == [
        ("bold", "Заказ №7"),
        ("italic", "готов"),
        ("text_link", "ссылка"),
        ("code", "A1"),
    ]
    reply = await world.operator_says(copy["message_thread_id"], text=SAID, entities=ENTITIES)
    got = await world.in_private(ivan, lambda m: text_of(m) == SAID and m["from"]["is_bot"])
    assert formatted(got) == formatted(copy)
    assert reply["text"] == SAID

    # A caption keeps its formatting too.
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    await world.operator_says(
        copy["message_thread_id"],
        photo=("check.png", png, "image/png"),
        caption="Чек: итог",
        entities=[{"type": "bold", "offset": 5, "length": 4}],
    )
    photo = await world.in_private(ivan, lambda m: "photo" in m)
    assert formatted(photo, "caption_entities") == [("bold", "итог")]


async def test_whatsapp_markup_and_viber_plain_text(
    world: World, start_gateway: StartGateway, wa: WhatsAppEmulator, viber: ViberEmulator
) -> None:
    await start_gateway(tweak=wa_and_viber(wa, viber))
    ivan = wa.create_user("Ivan", "79161234567")
    wa.user_send(NUMBER, ivan, "*Срочно*: где _заказ_?")
    copy = await world.in_staff(lambda m: text_of(m) == "Срочно: где заказ?")
    assert formatted(copy) == [("bold", "Срочно"), ("italic", "заказ")]
    await world.operator_says(copy["message_thread_id"], text=SAID, entities=ENTITIES)
    markup = "🙂 *Заказ №7* _готов_, трек: ссылка (https://track.example/7), код `A1`"
    await eventually(lambda: any(m.get("body") == markup for m in wa.conversation(NUMBER, ivan)))

    olga = viber.create_user("Olga")
    viber.user_send(VIBER_TOKEN, olga, "Где заказ?")
    asked = await world.in_staff(lambda m: text_of(m) == "Где заказ?")
    await world.operator_says(asked["message_thread_id"], text=SAID, entities=ENTITIES)
    plain = "🙂 Заказ №7 готов, трек: ссылка (https://track.example/7), код A1"
    await eventually(lambda: [m.get("text") for m in outgoing(viber, olga)] == [plain])
