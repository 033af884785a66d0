"""Uploading photos and documents for messages, in VK's three steps.

1. ``photos.getMessagesUploadServer`` / ``docs.getMessagesUploadServer`` give an
   ``upload_url`` on this emulator.
2. The client POSTs the file there as multipart (vk_api names the part ``file0`` for
   photos and ``file`` for documents); the answer is what step 3 takes.
3. ``photos.saveMessagesPhoto(server, photo, hash)`` / ``docs.save(file, title)`` store
   the file and return its object; ``photo{owner_id}_{id}_{access_key}`` (or
   ``doc…``) then goes into ``messages.send``'s ``attachment``.

https://dev.vk.com/ru/api/upload/photo-in-message and
https://dev.vk.com/ru/api/upload/document-in-message describe the real flow.
"""

from __future__ import annotations

import json

from .ctx import Ctx, Handler
from .files import Uploads, vk_object
from .models import JsonDict, invalid
from .state import VkWorld
from .wire import UploadedFile

PHOTO_FIELDS = ("file", "file0", "file1", "file2", "file3", "file4", "photo")
DOC_FIELDS = ("file", "file0")
DOC_TYPES = ("doc", "audio_message", "graffiti")


def photo_upload_server(ctx: Ctx) -> JsonDict:
    """``photos.getMessagesUploadServer`` → ``{"upload_url", "album_id", "group_id"}``."""
    ctx.params.opt_int("peer_id")  # accepted (and type-checked) but not needed
    group = ctx.group
    return {
        "upload_url": f"{ctx.base_url}/upload/photo/{group.id}",
        "album_id": -3,
        "group_id": group.id,
        "user_id": 0,
    }


def _photo_key(server: int, photo: str) -> str:
    return f"{server}|{photo}"


def upload_photo(world: VkWorld, group_id: int, files: list[UploadedFile]) -> JsonDict:
    """The photo upload server's answer: ``{"server", "photo", "hash"}`` (``photo`` is a
    JSON list *as a string*, ``"[]"`` when no file came)."""
    part = next((f for name in PHOTO_FIELDS for f in files if f.field == name), None)
    items = []
    if part is not None:
        upload = world.uploads.put(group_id, "photo", part.data, part.filename, part.content_type)
        items.append({"photo": f"{upload.id}:w", "sizes": [], "kid": upload.id[:8]})
    photo = json.dumps(items, separators=(",", ":"))
    server = Uploads.SERVER
    return {"server": server, "photo": photo, "hash": world.uploads.sign(_photo_key(server, photo))}


def save_messages_photo(ctx: Ctx) -> list[JsonDict]:
    """``photos.saveMessagesPhoto`` → a list with the saved photo object."""
    params, world = ctx.params, ctx.world
    server, photo = params.req_int("server"), params.req_str("photo")
    if not world.uploads.verify(_photo_key(server, photo), params.req_str("hash")):
        raise invalid("photos_list is invalid")
    try:
        items = json.loads(photo)
    except ValueError:
        raise invalid("photos_list is invalid") from None
    if not isinstance(items, list) or not items:
        raise invalid("photos_list is invalid")
    saved = []
    for item in items:
        upload_id = str(item.get("photo", "")).split(":")[0] if isinstance(item, dict) else ""
        upload = world.uploads.take(upload_id, ctx.group.id)
        if upload is None:
            raise invalid("photos_list is invalid")
        stored = world.files.add("photo", -ctx.group.id, upload.data, upload.name, upload.mime)
        saved.append(vk_object(world.files, stored))
    return saved


def doc_upload_server(ctx: Ctx) -> JsonDict:
    """``docs.getMessagesUploadServer`` (also ``getWallUploadServer``/``getUploadServer``)
    → ``{"upload_url"}``; ``type`` is ``doc`` (default) or ``audio_message``."""
    kind = ctx.params.opt_str("type") or "doc"
    if kind not in DOC_TYPES:
        raise invalid("type is invalid")
    ctx.params.opt_int("peer_id")
    return {"upload_url": f"{ctx.base_url}/upload/doc/{ctx.group.id}?type={kind}"}


def upload_doc(world: VkWorld, group_id: int, kind: str, files: list[UploadedFile]) -> JsonDict:
    """The document upload server's answer: ``{"file": "<opaque>"}`` or ``{"error"}``."""
    part = next((f for name in DOC_FIELDS for f in files if f.field == name), None)
    if part is None:
        return {"error": "no file"}
    kind = "audio_message" if kind == "audio_message" else "doc"
    upload = world.uploads.put(group_id, kind, part.data, part.filename, part.content_type)
    token = f"{upload.id}|{kind}"
    return {"file": f"{token}|{world.uploads.sign(token)}"}


def docs_save(ctx: Ctx) -> JsonDict:
    """``docs.save`` → ``{"type": "doc", "doc": …}`` or ``{"type": "audio_message", …}``."""
    world, params = ctx.world, ctx.params
    upload_id, _, rest = params.req_str("file").partition("|")
    kind, _, signature = rest.partition("|")
    if not world.uploads.verify(f"{upload_id}|{kind}", signature):
        raise invalid("file is invalid")
    upload = world.uploads.take(upload_id, ctx.group.id)
    if upload is None:
        raise invalid("file is invalid")
    stored = world.files.add(upload.kind, -ctx.group.id, upload.data, upload.name, upload.mime)
    stored.title = params.opt_str("title") or upload.name
    return {"type": stored.kind, stored.kind: vk_object(world.files, stored)}


HANDLERS: dict[str, Handler] = {
    "photos.getMessagesUploadServer": photo_upload_server,
    "photos.saveMessagesPhoto": save_messages_photo,
    "docs.getMessagesUploadServer": doc_upload_server,
    "docs.getWallUploadServer": doc_upload_server,
    "docs.getUploadServer": doc_upload_server,
    "docs.save": docs_save,
}
