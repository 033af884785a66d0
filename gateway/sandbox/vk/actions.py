"""What people do in the emulated VK: write to a community, edit, allow or deny messages.

Each action changes the world and emits the event VK would (``message_new``,
``message_edit``, ``message_allow``, ``message_deny``) in the shapes of API 5.199
(https://dev.vk.com/ru/api/community-events/json-schema).
"""

from __future__ import annotations

import secrets
import time

from .files import attachment, solid_png
from .models import CLIENT_INFO, JsonDict, Message
from .state import Community, VkWorld

_STICKER = solid_png(128, 128, (255, 196, 0))


def _plain(kind: str, body: JsonDict) -> JsonDict:
    return {"type": kind, kind: body}


def build_attachments(
    world: VkWorld,
    group: Community,
    user_id: int,
    *,
    photo: bytes | None,
    doc: tuple[str, bytes] | None,
    voice: bytes | None,
    sticker: bool,
    video: bool,
    wall: bool,
    link: str | None,
) -> list[JsonDict]:
    """Attachment objects for a person's message; files are stored and served."""
    files = world.files
    if photo == b"" or voice == b"" or (doc is not None and not doc[1]):
        raise ValueError("a file to send must not be empty")
    found: list[JsonDict] = []
    if photo is not None:
        found.append(attachment(files, files.add("photo", user_id, photo, "photo.jpg")))
    if doc is not None:
        name, data = doc
        found.append(attachment(files, files.add("doc", user_id, data, name)))
    if voice is not None:
        found.append(attachment(files, files.add("audio_message", user_id, voice, "voice.ogg")))
    if sticker:
        found.append(attachment(files, files.add("sticker", 0, _STICKER, "sticker.png")))
    serial = int(time.time() * 1000) % 1_000_000_000
    if video:
        body = {
            "id": serial,
            "owner_id": user_id,
            "title": "Video",
            "duration": 15,
            "access_key": secrets.token_hex(9),
        }
        found.append(_plain("video", body))
    if wall:
        body = {
            "id": serial,
            "owner_id": -group.id,
            "from_id": -group.id,
            "text": f"A post of {group.name}",
            "date": int(time.time()),
        }
        found.append(_plain("wall", body))
    if link is not None:
        found.append(_plain("link", {"url": link, "title": "Link", "description": ""}))
    return found


def send(
    world: VkWorld,
    group_id: int,
    user_id: int,
    text: str,
    attachments: list[JsonDict],
    *,
    geo: tuple[float, float] | None = None,
    reply_to: int | None = None,
    forward: list[int] | None = None,
) -> Message:
    """A person writes to the community: stored, ``message_new`` emitted, replies allowed."""
    group = world.group(group_id)
    world.user(user_id)
    if not text and not attachments and geo is None and not forward:
        raise ValueError("nothing to send: give text, an attachment, geo or forward")
    fields: JsonDict = {"attachments": attachments}
    if geo is not None:
        latitude, longitude = geo
        coordinates = {"latitude": latitude, "longitude": longitude}
        fields["geo"] = {"type": "point", "coordinates": coordinates}
    if reply_to is not None:
        fields["reply_message"] = _existing(world, group, user_id, reply_to).quoted()
    if forward:
        fields["fwd_messages"] = [_existing(world, group, user_id, i).quoted() for i in forward]
    message = world.add_message(group, user_id, user_id, text, **fields)
    group.allowed[user_id] = True
    world.emit(group, "message_new", {"message": message.vk_object(), "client_info": CLIENT_INFO})
    world.feed.emit("message", group.id, user_id, message=message.view())
    return message


def edit(world: VkWorld, group_id: int, user_id: int, message_id: int, text: str) -> Message:
    """A person edits their message: new text, ``update_time``, ``message_edit`` emitted."""
    group = world.group(group_id)
    message = _existing(world, group, user_id, message_id)
    if message.from_id != user_id:
        raise ValueError(f"message {message_id} was not written by user {user_id}")
    message.text = text
    message.update_time = int(time.time())
    message.version += 1
    world.emit(group, "message_edit", message.vk_object())
    world.feed.emit("edit", group.id, user_id, message=message.view())
    return message


def allow(world: VkWorld, group_id: int, user_id: int) -> None:
    """A person allows messages from the community (``message_allow``)."""
    group = world.group(group_id)
    world.user(user_id)
    group.allowed[user_id] = True
    world.emit(group, "message_allow", {"user_id": user_id, "key": ""})
    world.feed.emit("allow", group.id, user_id)


def deny(world: VkWorld, group_id: int, user_id: int) -> None:
    """A person forbids messages from the community (``message_deny``)."""
    group = world.group(group_id)
    world.user(user_id)
    group.allowed[user_id] = False
    world.emit(group, "message_deny", {"user_id": user_id})
    world.feed.emit("deny", group.id, user_id)


def _existing(world: VkWorld, group: Community, peer_id: int, message_id: int) -> Message:
    message = world.message(group, peer_id, message_id)
    if message is None:
        raise ValueError(f"no message {message_id} with {peer_id} in community {group.id}")
    return message
