"""Pure parts of the VK adapter: messages.send parameters, random_id, profiles."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from adapters.vk import send as out
from adapters.vk.profiles import ProfileCache, profile_of
from gateway.model import (
    AccountId,
    Attachment,
    Button,
    Content,
    Kind,
    Location,
    SharedContact,
    Venue,
)


@given(st.text(min_size=1, max_size=60), st.integers(min_value=0, max_value=50))
def test_random_id_is_a_stable_positive_int32(key: str, part: int) -> None:
    rid = out.random_id(key, part)
    assert 1 <= rid < 2**31 and rid == out.random_id(key, part)


def test_random_ids_differ_by_message_and_part() -> None:
    ids = {out.random_id(f"reply:{n}", part) for n in range(2000) for part in range(2)}
    assert len(ids) == 4000
    assert out.random_id(None, 0) != out.random_id(None, 0)  # no key: random


def test_long_text_is_split_and_the_attachment_rides_the_first_part() -> None:
    text = ("слово " * 1500).strip()  # ~9000 characters
    params = out.messages(Content(kind=Kind.PHOTO, text=text), "photo-1_2_k")
    assert len(params) == 3
    assert params[0]["attachment"] == "photo-1_2_k"
    assert all("attachment" not in p for p in params[1:])
    assert all(len(p["message"]) <= out.TEXT_LIMIT for p in params)
    assert " ".join(p["message"] for p in params) == text


def test_location_contact_venue_and_empty() -> None:
    [geo] = out.messages(
        Content(kind=Kind.LOCATION, location=Location(latitude=55.7, longitude=37.6)), None
    )
    assert geo == {"lat": 55.7, "long": 37.6}
    shared = SharedContact(phone="+79161234567", first_name="Ivan", last_name="Petrov")
    [card] = out.messages(Content(kind=Kind.CONTACT, contact=shared), None)
    assert card["message"] == "👤 Ivan Petrov: +79161234567"
    venue = Venue(location=Location(latitude=1, longitude=2), title="Shop", address="Main st 1")
    [place] = out.messages(Content(kind=Kind.VENUE, venue=venue), None)
    assert place["message"] == "📍 Shop, Main st 1" and place["lat"] == 1
    [nothing] = out.messages(Content(kind=Kind.TEXT, text=""), None)
    assert nothing["message"] == "…"


def test_buttons_become_an_inline_keyboard_under_the_last_part() -> None:
    buttons = (
        (Button(text="Site", url="https://example.com"),),
        (Button(text="Yes, please — a very long label indeed, longer than VK takes", data="y"),),
    )
    params = out.messages(Content(kind=Kind.TEXT, text="Choose", buttons=buttons), None)
    markup = json.loads(params[-1]["keyboard"])
    assert markup["inline"] is True
    link, reply = markup["buttons"][0][0]["action"], markup["buttons"][1][0]["action"]
    assert link == {"type": "open_link", "link": "https://example.com", "label": "Site"}
    assert reply["type"] == "text" and len(reply["label"]) == out.LABEL_LIMIT
    assert json.loads(reply["payload"]) == {"b": "y"}


def test_profiles_skip_placeholders_and_expire() -> None:
    user = {"id": 5, "first_name": "Иван", "last_name": "Петров", "screen_name": "id5"}
    user["photo_200"] = "https://vk.com/images/camera_200.png"
    profile = profile_of(user)
    assert profile.name == "Иван Петров" and profile.username is None
    assert profile.photo_url is None
    named = profile_of(
        {"id": 6, "first_name": "", "screen_name": "durov", "photo_200": "https://x/y.jpg"}
    )
    assert named.name == "VK user 6" and named.username == "durov" and named.photo_url

    now = [0.0]
    cache = ProfileCache(size=2, ttl=10, clock=lambda: now[0])
    cache.put("5", profile)
    cache.put("6", named)
    assert cache.missing(["5", "6", "7"]) == ["7"]
    cache.put("7", profile)  # evicts the least recently used
    assert cache.get("5") is None and cache.get("7") is profile
    now[0] = 11
    assert cache.get("7") is None


def test_sticker_from_elsewhere_is_sent_as_a_picture() -> None:
    assert Kind.STICKER in out.PHOTO_KINDS
    sticker = Content(
        kind=Kind.STICKER, attachment=Attachment(account=AccountId("tg"), file_id="x")
    )
    [params] = out.messages(sticker, "photo-1_5")
    assert params == {"attachment": "photo-1_5"}
