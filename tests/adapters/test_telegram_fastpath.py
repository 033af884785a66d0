"""The text fast path yields exactly what aiogram's parse yields, or declines."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.telegram.fastpath import parse_private_text
from adapters.telegram.parse import parse_update
from gateway.errors import BadPayload
from gateway.model import AccountId
from tests.strategies import json_values

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ACCOUNT = AccountId("tg_shop")
ids = st.integers(min_value=1, max_value=2**52)
names = st.text(min_size=1, max_size=20)
optional = st.none() | names


@st.composite
def text_updates(draw: st.DrawFn) -> dict[str, Any]:
    user_id = draw(ids)
    user: dict[str, Any] = {"id": user_id, "is_bot": draw(st.booleans()), "first_name": draw(names)}
    for key in ("last_name", "username", "language_code"):
        if (value := draw(optional)) is not None:
            user[key] = value
    if draw(st.booleans()):
        user["is_premium"] = True
    chat: dict[str, Any] = {"id": user_id, "type": "private", "first_name": user["first_name"]}
    message: dict[str, Any] = {
        "message_id": draw(ids),
        "date": draw(st.integers(min_value=0, max_value=2**32)),
        "chat": chat,
        "from": user,
        "text": draw(st.text(max_size=200)),
    }
    if draw(st.booleans()):
        message["entities"] = [{"type": "bold", "offset": 0, "length": 1}]
    edited = draw(st.booleans())
    if edited:
        message["edit_date"] = message["date"] + draw(st.integers(min_value=0, max_value=999))
    return {"update_id": draw(ids), ("edited_message" if edited else "message"): message}


def slow_parse(payload: dict[str, Any]) -> Any:
    """The aiogram path alone (the fast path switched off)."""
    from adapters.telegram import parse as module

    original = module.parse_private_text
    module.parse_private_text = lambda *a, **k: None  # type: ignore[assignment]
    try:
        return parse_update(payload, account=ACCOUNT, bot_id=1001, received_at=NOW)
    finally:
        module.parse_private_text = original


@settings(max_examples=300, deadline=None)
@given(text_updates())
def test_fast_path_equals_aiogram(update: dict[str, Any]) -> None:
    fast = parse_private_text(update, account=ACCOUNT, bot_id=1001, received_at=NOW)
    assert fast is not None
    assert fast == slow_parse(update)


@settings(max_examples=300, deadline=None)
@given(
    text_updates(),
    st.sampled_from(["message", "chat", "from", "update"]),
    st.text(max_size=12),
    json_values,
)
def test_fast_path_declines_what_it_does_not_know(
    update: dict[str, Any], where: str, key: str, value: Any
) -> None:
    """Any changed or extra field: the fast path declines or agrees with aiogram."""
    mutated = copy.deepcopy(update)
    message = mutated.get("message") or mutated["edited_message"]
    target = {
        "update": mutated,
        "message": message,
        "chat": message["chat"],
        "from": message["from"],
    }[where]
    target[key] = value
    fast = parse_private_text(mutated, account=ACCOUNT, bot_id=1001, received_at=NOW)
    if fast is None:
        return
    try:
        slow = slow_parse(mutated)
    except BadPayload:
        pytest.fail(f"fast path accepted what aiogram rejects: {mutated}")
    assert fast == slow


@pytest.mark.parametrize(
    "payload",
    [
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": 1, "type": "group"},
                "from": {"id": 1, "is_bot": False, "first_name": "A"},
                "text": "x",
            },
        },
        {"update_id": True, "message": {}},
        {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": 1, "type": "private"},
                "from": {"id": 1, "is_bot": False, "first_name": "A"},
                "photo": [],
                "caption": "x",
            },
        },
        {
            "update_id": 1,
            "message": {
                "message_id": "1",
                "date": 1,
                "chat": {"id": 1, "type": "private"},
                "from": {"id": 1, "is_bot": False, "first_name": "A"},
                "text": "x",
            },
        },
        [1, 2],
    ],
)
def test_declines_other_shapes(payload: Any) -> None:
    assert parse_private_text(payload, account=ACCOUNT, bot_id=1, received_at=NOW) is None
