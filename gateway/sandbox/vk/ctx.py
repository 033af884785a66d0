"""What an API method handler gets: the world, the calling community and the parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .callback import CallbackDelivery
from .models import ACCESS_DENIED, VkApiError
from .state import Community, VkWorld
from .wire import Params


@dataclass
class Ctx:
    """One API call in progress."""

    world: VkWorld
    group: Community
    """The community whose access token made the call."""
    params: Params
    delivery: CallbackDelivery

    @property
    def base_url(self) -> str:
        """The emulator's absolute base URL (for upload servers, files, long poll)."""
        return self.world.base_url()

    def own_group_id(self, *, required: bool = True) -> int:
        """``group_id`` of the call, which must be the token's community (error 15)."""
        group_id = self.params.req_int("group_id") if required else self.params.opt_int("group_id")
        if group_id is not None and group_id != self.group.id:
            raise VkApiError(15, f"{ACCESS_DENIED}: no access to this group")
        return self.group.id


Handler = Callable[[Ctx], Any]
