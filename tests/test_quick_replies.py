"""Quick replies: ``//name`` sends a prepared answer with its macros filled."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.staff.quick import MACROS, expand, first_name
from tests.conftest import (
    STAFF_CHAT,
    StartGateway,
    World,
    answer_of,
    buttons_of,
    eventually,
    text_of,
)

GREET = (
    "Здравствуйте, {contact.first_name|друг}! Меня зовут {operator.name}, {company.name}. "
    "Обращение {process.number}. {contact.name}"
)


def test_every_macro_and_defaults_for_empty_values() -> None:
    values = {
        "contact.name": "Ivan Petrov",
        "contact.first_name": "Ivan",
        "operator.name": "Anna",
        "process.number": "20261123-1",
        "company.name": "Shop",
    }
    assert expand(GREET, values) == (
        "Здравствуйте, Ivan! Меня зовут Anna, Shop. Обращение 20261123-1. Ivan Petrov"
    )
    assert expand("Hi {contact.first_name|there}!", {"contact.first_name": "  "}) == "Hi there!"
    assert expand("Hi {contact.first_name}!", {}) == "Hi !"
    assert expand("{not a macro} stays", {}) == "{not a macro} stays"
    assert first_name("Ivan Petrov") == "Ivan" and first_name("") == ""


@given(st.text(), st.dictionaries(st.sampled_from(sorted(MACROS)), st.text()))
def test_text_without_macros_is_kept_exactly(text: str, values: dict[str, str]) -> None:
    plain = text.replace("{", "(").replace("}", ")")
    assert expand(plain, values) == plain


def config(templates: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(
        {
            "staff": {"token": "1:a", "chat_id": -1001},
            "channels": [{"id": "tg_shop", "kind": "telegram", "token": "2:b"}],
            "templates": templates,
        }
    )


def test_config_refuses_unknown_macros_duplicates_and_unknown_accounts() -> None:
    cases = [
        ([{"name": "x", "text": "Hi {contact.nmae}"}], "templates[0].text", "contact.nmae"),
        ([{"name": "x", "text": "a"}, {"name": "x", "text": "b"}], "templates[1]", "twice"),
        ([{"name": "x", "text": "a", "accounts": ["vk"]}], "templates[0].accounts[0]", "'vk'"),
        ([{"name": "x", "text": "a", "roles": ["sales"]}], "templates[0].roles[0]", "'sales'"),
        ([{"name": "Bad Name", "text": "a"}], "templates[0].name", ""),
    ]
    for templates, path, words in cases:
        with pytest.raises(ConfigError) as info:
            parse_config(config(templates))
        errors = dict(info.value.errors)
        assert path in errors and words in errors[path], errors


async def test_quick_replies_in_a_topic(world: World, start_gateway: StartGateway) -> None:
    def tweak(data: dict[str, Any]) -> None:
        data["company"] = {"name": "Shop"}
        data["templates"] = [
            {"name": "greet", "text": GREET},
            {"name": "bye", "text": "До свидания, {contact.first_name|друг}!"},
            {"name": "vk_only", "text": "VK", "accounts": ["tg_shop"]},
            {"name": "refund", "text": "Refund", "roles": ["service"]},
        ]
        data["staff"]["roles"] = [{"name": "sales"}, {"name": "service"}]
        data["staff"]["operators"] = [
            {"id": world.operator["id"], "name": "Anna", "roles": ["sales"]}
        ]

    await start_gateway(tweak=tweak)
    ivan = world.customer("Ivan", "ivan")
    await world.say(ivan, text="Здравствуйте")
    await world.in_staff(lambda m: text_of(m) == "Здравствуйте")
    topic = world.topic_of("Ivan")

    await world.operator_says(topic, text="//greet")
    greeting = await world.in_private(ivan, lambda m: text_of(m).startswith("Здравствуйте, Ivan!"))
    assert "Меня зовут Anna, Shop." in text_of(greeting) and "Обращение " in text_of(greeting)
    assert "{" not in text_of(greeting)

    unknown = await world.operator_says(topic, text="//nope")
    assert "No quick reply" in text_of(await world.answer_to(unknown))

    # A quick reply for another role is neither listed nor sent.
    refund = await world.operator_says(topic, text="//refund")
    assert "No quick reply “refund” here" in text_of(await world.answer_to(refund))
    listing = await world.operator_says(topic, text="//")
    offer = await world.answer_to(listing)
    assert [b["callback_data"] for b in buttons_of(offer)] == ["q:greet", "q:bye", "q:vk_only"]
    pressed = next(b for b in buttons_of(offer) if b["callback_data"] == "q:bye")
    query = await world.emulator.press_button(
        world.operator["id"], STAFF_CHAT, offer["message_id"], pressed["callback_data"]
    )
    assert "Sent" in (await answer_of(world, query))["text"]
    await world.in_private(ivan, lambda m: text_of(m) == "До свидания, Ivan!")

    await world.operator_says(topic, text="/t bye")

    def farewells() -> int:
        return sum(text_of(m) == "До свидания, Ivan!" for m in world.emulator.messages(ivan["id"]))

    await eventually(lambda: farewells() == 2)  # the button and /t; "//nope" sent nothing
    assert not any("{" in text_of(m) for m in world.emulator.messages(ivan["id"]))
