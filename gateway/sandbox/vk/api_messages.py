"""``messages.*`` and ``users.get`` for a community token.

``messages.send`` follows https://dev.vk.com/ru/method/messages.send: ``random_id`` is
required and makes the call idempotent (the same ``peer_id`` and ``random_id`` again
returns the first message's id and sends nothing); a community may only write to people
who wrote to it or allowed its messages (error 901); text is at most 4096 characters
(error 914). Attachments are ``{type}{owner_id}_{id}[_{access_key}]`` strings of files
uploaded to this emulator.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .ctx import Ctx, Handler
from .files import attachment
from .models import (
    ACCESS_DENIED,
    MAX_MESSAGE_LENGTH,
    NO_PERMISSION,
    TOO_LONG,
    JsonDict,
    Message,
    VkApiError,
    invalid,
    missing,
)

_REF = re.compile(r"^(photo|doc|audio_message|sticker)(-?\d+)_(\d+)(?:_([0-9A-Za-z]+))?$")
_INT32 = 2**31


def _attachments(ctx: Ctx, refs: list[str]) -> list[JsonDict]:
    """Resolve attachment strings to objects; error 100 for anything not stored here."""
    found = []
    for ref in refs:
        match = _REF.match(ref)
        stored = ctx.world.files.find(int(match[2]), int(match[3])) if match else None
        if match is None or stored is None:
            raise invalid(f"attachment {ref} not found")
        kind, access_key = match[1], match[4]
        # A voice message is attached as doc… as well as audio_message….
        if kind != stored.kind and not (kind == "doc" and stored.kind == "audio_message"):
            raise invalid(f"attachment {ref} not found")
        if access_key is not None and access_key != stored.access_key:
            raise invalid(f"attachment {ref}: access_key is invalid")
        if stored.owner_id not in (-ctx.group.id, 0) and access_key is None:
            raise VkApiError(15, f"{ACCESS_DENIED}: attachment {ref} needs its access_key")
        found.append(attachment(ctx.world.files, stored))
    return found


def _peer_id(ctx: Ctx) -> int:
    peer_id = ctx.params.opt_int("peer_id")
    if peer_id is None:
        peer_id = ctx.params.opt_int("user_id")
    if peer_id is None:
        raise missing("peer_id")
    return peer_id


def _text(ctx: Ctx) -> str:
    text = ctx.params.opt_str("message") or ""
    if len(text) > MAX_MESSAGE_LENGTH:
        raise VkApiError(914, TOO_LONG)
    return text


def _keyboard(ctx: Ctx) -> Any:
    raw = ctx.params.opt_str("keyboard")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise VkApiError(911, "Keyboard format is invalid") from None


def send(ctx: Ctx) -> int:
    """``messages.send`` → the new message's id."""
    group, params = ctx.group, ctx.params
    peer_id = _peer_id(ctx)
    random_id = params.opt_int("random_id")
    if random_id is None:
        raise missing("random_id")
    if not -_INT32 <= random_id < _INT32:
        raise invalid("random_id is out of int32 range")
    text = _text(ctx)
    attachments = _attachments(ctx, params.csv("attachment"))
    latitude = params.opt_float("lat")
    if not text and not attachments and latitude is None:
        raise invalid("message is empty or invalid")
    keyboard = _keyboard(ctx)
    if random_id and (peer_id, random_id) in group.random_ids:
        return group.random_ids[(peer_id, random_id)]  # a repeated call sends nothing
    if not group.allowed.get(peer_id):
        raise VkApiError(901, NO_PERMISSION)
    fields: JsonDict = {"attachments": attachments, "random_id": random_id, "keyboard": keyboard}
    reply_to = params.opt_int("reply_to")
    if reply_to is not None:
        quoted = ctx.world.message(group, peer_id, reply_to)
        if quoted is None:
            raise invalid("reply_to is invalid")
        fields["reply_message"] = quoted.quoted()
    if latitude is not None:
        coordinates = {"latitude": latitude, "longitude": params.opt_float("long") or 0.0}
        fields["geo"] = {"type": "point", "coordinates": coordinates}
    message = ctx.world.add_message(group, peer_id, -group.id, text, **fields)
    if random_id:
        group.random_ids[(peer_id, random_id)] = message.id
    ctx.world.feed.emit("message", group.id, peer_id, message=message.view())
    return message.id


def _find(ctx: Ctx, peer_id: int) -> Message:
    message_id = ctx.params.opt_int("message_id")
    cmid = ctx.params.opt_int("conversation_message_id")
    if message_id is None and cmid is None:
        raise missing("message_id")
    for message in ctx.group.conversations.get(peer_id, []):
        if message_id == message.id or (cmid and cmid == message.conversation_message_id):
            return message
    raise invalid("message_id is invalid")


def edit(ctx: Ctx) -> int:
    """``messages.edit`` of the community's own message → 1."""
    params = ctx.params
    peer_id = _peer_id(ctx)
    message = _find(ctx, peer_id)
    if message.from_id != -ctx.group.id:
        raise VkApiError(15, f"{ACCESS_DENIED}: you can only edit your own messages")
    text = _text(ctx)
    has_attachment = params.opt_str("attachment") is not None
    if not text and not has_attachment and not message.attachments:
        raise invalid("message is empty or invalid")
    if has_attachment:
        message.attachments = _attachments(ctx, params.csv("attachment"))
    keyboard = _keyboard(ctx)
    if keyboard is not None:
        message.keyboard = keyboard
    message.text = text
    message.update_time = int(time.time())
    message.version += 1
    ctx.world.feed.emit("edit", ctx.group.id, peer_id, message=message.view())
    return 1


DELETE_FOR_ALL_SECONDS = 24 * 3600


def delete(ctx: Ctx) -> JsonDict:
    """``messages.delete`` of the community's own messages (``message_ids``, or ``cmids``
    with ``peer_id``) → ``{id: 1}``. With ``delete_for_all=1`` the customer no longer
    sees them, only within 24 hours of sending (error 924 after that); without it only
    the community's copy goes, and the customer keeps seeing the message."""
    params = ctx.params
    ctx.own_group_id(required=False)
    for_all = params.opt_int("delete_for_all") == 1
    ids = {int(x) for x in params.csv("message_ids") if x.lstrip("-").isdigit()}
    cmids = {int(x) for x in params.csv("cmids") if x.isdigit()}
    if not ids and not cmids:
        raise missing("message_ids")
    peer_id = params.opt_int("peer_id")
    now, deleted = int(time.time()), {}
    for peer, history in ctx.group.conversations.items():
        for message in list(history):
            wanted = message.id in ids or (
                peer == peer_id and message.conversation_message_id in cmids
            )
            if not wanted:
                continue
            if message.from_id != -ctx.group.id:
                raise VkApiError(15, f"{ACCESS_DENIED}: a community deletes only its own messages")
            if for_all and now - message.date > DELETE_FOR_ALL_SECONDS:
                raise VkApiError(924, "Can't delete this message for everybody")
            if for_all:
                history.remove(message)
                ctx.world.feed.emit("delete", ctx.group.id, peer, message_id=message.id)
            deleted[str(message.id)] = 1
    if not deleted:
        raise invalid("message_ids: no such message")
    return deleted


def mark_as_read(ctx: Ctx) -> int:
    """``messages.markAsRead``: the conversation is read up to ``start_message_id`` → 1."""
    group = ctx.group
    ctx.own_group_id(required=False)
    peer_id = _peer_id(ctx)
    history = group.conversations.get(peer_id, [])
    start = ctx.params.opt_int("start_message_id")
    up_to = start if start is not None else max((m.id for m in history), default=0)
    group.read_up_to[peer_id] = max(group.read_up_to.get(peer_id, 0), up_to)
    ctx.world.feed.emit("read", group.id, peer_id, up_to=group.read_up_to[peer_id])
    return 1


def users_get(ctx: Ctx) -> list[JsonDict]:
    """``users.get``: known people among ``user_ids``, with the asked ``fields``."""
    fields = frozenset(ctx.params.csv("fields"))
    found = []
    for raw in ctx.params.csv("user_ids"):
        user = ctx.world.users.get(int(raw)) if raw.lstrip("-").isdigit() else None
        if user is not None:
            found.append(user.user_dict(fields))
    return found


HANDLERS: dict[str, Handler] = {
    "messages.send": send,
    "messages.edit": edit,
    "messages.delete": delete,
    "messages.markAsRead": mark_as_read,
    "users.get": users_get,
}
