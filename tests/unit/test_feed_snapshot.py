"""The emulators' console feed keeps snapshots: later changes to a stored object do not
show in the events already recorded."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.sandbox.common.feed import Feed, snapshot

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers(), max_size=3)
        | st.sets(st.integers(), max_size=3)
    ),
    max_leaves=30,
)


def _mutables(value: Any) -> list[Any]:
    """Every list, dict and set inside ``value`` (the containers that must not be shared)."""
    found: list[Any] = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found += _mutables(item)
    elif isinstance(value, list | set):
        found.append(value)
        for item in value:
            found += _mutables(item)
    elif isinstance(value, tuple):
        for item in value:
            found += _mutables(item)
    return found


@given(VALUES)
def test_snapshot_is_a_deep_copy(value: Any) -> None:
    copied = snapshot(value)
    assert repr(copied) == repr(copy.deepcopy(value))  # repr: NaN != NaN
    originals = {id(v) for v in _mutables(value)}
    assert not originals & {id(v) for v in _mutables(copied)}


def test_recorded_events_do_not_change_with_the_object() -> None:
    feed = Feed()
    message = {"text": "hi", "entities": [{"type": "bold", "offset": 0, "length": 2}]}
    feed.record("message", {"chat_id": 1}, {"message": message})
    message["text"] = "edited"
    message["entities"][0]["length"] = 1
    [event] = feed.after(0)
    assert event == {
        "seq": 1,
        "type": "message",
        "chat_id": 1,
        "message": {"text": "hi", "entities": [{"type": "bold", "offset": 0, "length": 2}]},
    }
