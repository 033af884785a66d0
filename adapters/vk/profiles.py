"""Names and photos of VK users (``users.get``), cached: VK events carry only ids.

https://dev.vk.com/ru/method/users.get — ``fields=screen_name,photo_200``. A user with
no photo gets VK's camera placeholder, which is not worth showing to staff.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

FIELDS = "screen_name,photo_200"
PLACEHOLDER_PHOTO = "/images/camera_"
BATCH = 1000  # users.get takes up to 1000 ids at once


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    username: str | None
    photo_url: str | None


def profile_of(user: dict[str, Any]) -> Profile:
    uid = user.get("id")
    name = " ".join(str(user.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
    screen = user.get("screen_name")
    photo = user.get("photo_200")
    return Profile(
        name=name or f"VK user {uid}",
        # "id123" is what VK shows for users without a short name: not a username.
        username=str(screen) if screen and screen != f"id{uid}" else None,
        photo_url=str(photo) if photo and PLACEHOLDER_PHOTO not in str(photo) else None,
    )


class ProfileCache:
    """An LRU of profiles that expire after ``ttl`` seconds (names change)."""

    def __init__(
        self, *, size: int = 10_000, ttl: float = 3600, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size, self.ttl, self.clock = size, ttl, clock
        self._items: OrderedDict[str, tuple[float, Profile]] = OrderedDict()

    def get(self, user_id: str) -> Profile | None:
        item = self._items.get(user_id)
        if item is None or self.clock() - item[0] > self.ttl:
            return None
        self._items.move_to_end(user_id)
        return item[1]

    def put(self, user_id: str, profile: Profile) -> None:
        self._items[user_id] = (self.clock(), profile)
        self._items.move_to_end(user_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def missing(self, user_ids: Iterable[str]) -> list[str]:
        return sorted({u for u in user_ids if self.get(u) is None})
