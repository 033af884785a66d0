"""The emulated VK: communities, people, conversations, files and the event fan-out.

A community (:class:`Community`) has one access token, a confirmation code for the
Callback API, a long poll server and callback servers. Its conversations are keyed by
``peer_id`` (the person's user id). Whether the community may write to a person follows
VK's rule: only after the person wrote to it or allowed messages, and not after they
denied them (https://dev.vk.com/ru/api/bots/development/messages).

Every event (``message_new``, ``message_edit``, ``message_allow``, ``message_deny``) goes
to the community's long poll history and to each of its confirmed callback servers that
has the event type switched on. :class:`VkFeed` is a separate, simpler stream of what
happened, for the web console and tests.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..common.feed import Feed
from .callback import CallbackDelivery
from .files import FileStore, Uploads
from .longpoll import CommunityLongPoll
from .models import (
    API_VERSION,
    AUTH_FAILED,
    Call,
    CallbackServer,
    JsonDict,
    Message,
    User,
    VkApiError,
)


@dataclass
class Community:
    """One VK community (group) and everything that belongs to it."""

    id: int
    name: str
    token: str
    confirmation: str
    longpoll: CommunityLongPoll = field(default_factory=CommunityLongPoll)
    servers: dict[int, CallbackServer] = field(default_factory=dict)
    conversations: dict[int, list[Message]] = field(default_factory=dict)
    allowed: dict[int, bool] = field(default_factory=dict)
    """Per person: may the community write to them."""
    read_up_to: dict[int, int] = field(default_factory=dict)
    """Per peer: the newest message id the community marked as read."""
    random_ids: dict[tuple[int, int], int] = field(default_factory=dict)
    """``(peer_id, random_id)`` → the message id ``messages.send`` gave it."""
    longpoll_settings: JsonDict = field(default_factory=dict)
    message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def screen_name(self) -> str:
        """The community's short address, ``club{id}``."""
        return f"club{self.id}"

    def group_dict(self) -> JsonDict:
        """The ``groups.getById`` object."""
        return {
            "id": self.id,
            "name": self.name,
            "screen_name": self.screen_name,
            "is_closed": 0,
            "type": "group",
            "photo_200": "https://vk.com/images/community_200.png",
        }


class VkFeed(Feed):
    """What happened in the communities' conversations, for the console and ``wait_for``."""

    def emit(self, kind: str, group_id: int, peer_id: int, **fields: Any) -> JsonDict:
        """Record ``kind`` (message, edit, read, allow, deny) in a conversation."""
        return self.record(kind, {"group_id": group_id, "peer_id": peer_id}, fields)


class VkWorld:
    """All state of one emulator."""

    def __init__(self, base_url: Callable[[], str], delivery: CallbackDelivery) -> None:
        self.base_url = base_url
        self.delivery = delivery
        self.groups: dict[int, Community] = {}
        self.tokens: dict[str, int] = {}
        self.users: dict[int, User] = {}
        self.files = FileStore(base_url)
        self.uploads = Uploads()
        self.calls: list[Call] = []
        self.feed = VkFeed()
        self._user_ids = itertools.count(100001)
        self._server_ids = itertools.count(1)

    # --- accounts -------------------------------------------------------------------------

    def create_group(self, group_id: int, token: str, name: str, confirmation: str) -> Community:
        """Register a community with its access token."""
        if group_id <= 0:
            raise ValueError("a community id is a positive number")
        if group_id in self.groups:
            raise ValueError(f"community {group_id} already exists")
        if token in self.tokens:
            raise ValueError("another community already has this token")
        group = Community(group_id, name, token, confirmation)
        self.groups[group_id] = group
        self.tokens[token] = group_id
        return group

    def group(self, group_id: int) -> Community:
        """A community by id (``ValueError`` when unknown)."""
        group = self.groups.get(group_id)
        if group is None:
            raise ValueError(f"unknown community {group_id}")
        return group

    def authenticate(self, token: str | None) -> Community:
        """The community of an access token; VK error 5 for a missing or unknown one."""
        group_id = self.tokens.get(token or "")
        if group_id is None:
            raise VkApiError(5, AUTH_FAILED)
        return self.groups[group_id]

    def create_user(
        self,
        first_name: str,
        last_name: str = "",
        *,
        user_id: int | None = None,
        screen_name: str | None = None,
        photo: bytes | None = None,
    ) -> User:
        """Register a person (a free id when ``user_id`` is ``None``)."""
        if user_id is None:
            user_id = next(self._user_ids)
            while user_id in self.users:
                user_id = next(self._user_ids)
        if user_id <= 0 or user_id >= 2_000_000_000:
            raise ValueError("a user id is a positive number below 2e9")
        if user_id in self.users:
            raise ValueError(f"user {user_id} already exists")
        user = User(user_id, first_name, last_name, screen_name)
        if photo is not None:
            user.photo_url = self.files.add("photo", user_id, photo, "photo_200.jpg").url
        self.users[user_id] = user
        return user

    def user(self, user_id: int) -> User:
        """A person by id (``ValueError`` when unknown)."""
        user = self.users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        return user

    # --- conversations --------------------------------------------------------------------

    def add_message(
        self, group: Community, peer_id: int, from_id: int, text: str, **fields: Any
    ) -> Message:
        """Store a new message in the conversation with ``peer_id``."""
        history = group.conversations.setdefault(peer_id, [])
        message = Message(
            id=next(group.message_ids),
            conversation_message_id=len(history) + 1,
            peer_id=peer_id,
            from_id=from_id,
            text=text,
            date=int(time.time()),
            **fields,
        )
        history.append(message)
        return message

    def message(self, group: Community, peer_id: int, message_id: int) -> Message | None:
        """A message of the conversation by its id."""
        return next((m for m in group.conversations.get(peer_id, []) if m.id == message_id), None)

    def add_callback_server(
        self, group: Community, url: str, title: str, secret_key: str | None
    ) -> CallbackServer:
        """Register a callback server (not confirmed yet)."""
        server = CallbackServer(next(self._server_ids), group.id, title, url, secret_key)
        group.servers[server.id] = server
        return server

    # --- events ---------------------------------------------------------------------------

    def emit(self, group: Community, kind: str, obj: JsonDict) -> JsonDict:
        """Send an event to the long poll and to every callback server that wants it."""
        event: JsonDict = {
            "type": kind,
            "event_id": secrets.token_hex(20),
            "v": str(group.longpoll_settings.get("api_version") or API_VERSION),
            "object": obj,
            "group_id": group.id,
        }
        group.longpoll.push(copy.deepcopy(event))
        for server in group.servers.values():
            if server.status == "ok" and kind in server.events:
                self.delivery.deliver(server, copy.deepcopy(event))
        return event

    def close(self) -> None:
        """Release long polls and console waiters."""
        for group in self.groups.values():
            group.longpoll.close()
        self.feed.close()
