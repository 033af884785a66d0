"""Files of the emulated VK: photos, documents, voice messages and sticker images.

Every stored file is served at ``{base}/files/{key}/{name}`` (``key`` is random, so URLs
are unguessable like VK's CDN links) with its bytes, content type and Content-Length.
The VK objects built here carry those absolute URLs, so a client downloads attachments
the way it would from VK. Uploads follow VK's three steps (get an upload server, POST the
file there, save what it answered); :class:`Uploads` keeps the files between steps and
signs what the upload server answers, so a tampered ``hash`` is refused like VK does.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import mimetypes
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..common.images import solid_png as solid_png
from ..telegram.files import image_size
from .models import JsonDict

PHOTO_SIZES = (("s", 75), ("m", 130), ("x", 604), ("y", 807), ("z", 1080), ("w", 2560))
"""VK's proportional photo copies: type and the longest side it is scaled down to
(https://dev.vk.com/ru/reference/objects/photo-sizes)."""
DEFAULT_PHOTO_SIZE = (800, 600)
_DOC_TYPES = {
    1: ("txt", "doc", "docx", "pdf", "odt", "rtf", "xls", "xlsx", "csv"),
    2: ("zip", "rar", "7z", "tar", "gz"),
    3: ("gif",),
    4: ("jpg", "jpeg", "png", "webp", "bmp", "heic"),
    5: ("mp3", "ogg", "oga", "opus", "wav", "m4a", "flac"),
    6: ("mp4", "avi", "mov", "mkv", "webm"),
    7: ("epub", "fb2", "djvu", "mobi"),
}
"""Document ``type``: 1 text, 2 archive, 3 gif, 4 image, 5 audio, 6 video, 7 e-book, 8 other."""


@dataclass
class StoredFile:
    """One file with the identity VK gives it (``{kind}{owner_id}_{id}``)."""

    key: str
    kind: str
    """``photo``, ``doc``, ``audio_message`` or ``sticker``."""
    owner_id: int
    id: int
    access_key: str
    data: bytes
    mime: str
    name: str
    date: int
    url: str
    width: int = 0
    height: int = 0
    title: str = ""
    """A document's title (``docs.save``); the file name when empty."""

    @property
    def ext(self) -> str:
        """The file name's extension, lower case, without the dot."""
        return self.name.rsplit(".", 1)[-1].lower() if "." in self.name else ""

    @property
    def duration(self) -> int:
        """A plausible voice message length in seconds (about 2 KB/s of Opus)."""
        return max(1, len(self.data) // 2000)

    @property
    def ref(self) -> str:
        """The attachment string ``messages.send`` takes, with the access key."""
        return f"{self.kind}{self.owner_id}_{self.id}_{self.access_key}"


class FileStore:
    """All files, by URL key and by ``(owner_id, id)``."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self._by_key: dict[str, StoredFile] = {}
        self._by_ref: dict[tuple[int, int], StoredFile] = {}
        self._ids = itertools.count(457239017)

    def add(self, kind: str, owner_id: int, data: bytes, name: str, mime: str = "") -> StoredFile:
        """Store a file; photos and stickers get their pixel size from the image header."""
        key = secrets.token_hex(12)
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind == "audio_message" and mime == "application/octet-stream":
            mime = "audio/ogg"
        stored = StoredFile(
            key=key,
            kind=kind,
            owner_id=owner_id,
            id=next(self._ids),
            access_key=secrets.token_hex(9),
            data=data,
            mime=mime,
            name=name,
            date=int(time.time()),
            url=f"{self._base_url()}/files/{key}/{name}",
        )
        if kind in ("photo", "sticker"):
            stored.width, stored.height = image_size(data) or DEFAULT_PHOTO_SIZE
        self._by_key[key] = stored
        self._by_ref[(owner_id, stored.id)] = stored
        return stored

    def by_key(self, key: str) -> StoredFile | None:
        """The file behind a URL key."""
        return self._by_key.get(key)

    def find(self, owner_id: int, file_id: int) -> StoredFile | None:
        """The file ``{kind}{owner_id}_{file_id}`` (any kind)."""
        return self._by_ref.get((owner_id, file_id))

    def size_url(self, stored: StoredFile, size_type: str) -> str:
        """URL of one photo copy (all copies serve the original bytes)."""
        ext = stored.ext or "jpg"
        return f"{self._base_url()}/files/{stored.key}/{size_type}.{ext}"


def photo_sizes(store: FileStore, stored: StoredFile) -> list[JsonDict]:
    """The ``sizes`` array: every smaller proportional copy and the original."""
    longest = max(stored.width, stored.height, 1)
    sizes: list[JsonDict] = []
    for size_type, limit in PHOTO_SIZES:
        if limit < longest:
            scale = limit / longest
            width, height = round(stored.width * scale), round(stored.height * scale)
        else:
            width, height = stored.width, stored.height
        sizes.append(
            {
                "type": size_type,
                "url": store.size_url(stored, size_type),
                "width": max(1, width),
                "height": max(1, height),
            }
        )
        if limit >= longest:
            break
    return sizes


def doc_type(ext: str) -> int:
    """VK's document type number for a file extension."""
    return next((number for number, exts in _DOC_TYPES.items() if ext in exts), 8)


def vk_object(store: FileStore, stored: StoredFile) -> JsonDict:
    """The VK object of a stored file (inside an attachment of the same ``type``)."""
    base: JsonDict = {"id": stored.id, "owner_id": stored.owner_id}
    match stored.kind:
        case "photo":
            return {
                **base,
                "access_key": stored.access_key,
                "album_id": -3,  # the hidden album of photos sent in messages
                "date": stored.date,
                "sizes": photo_sizes(store, stored),
                "text": "",
                "has_tags": False,
            }
        case "audio_message":
            return {
                **base,
                "duration": stored.duration,
                "waveform": [(i * 7) % 31 for i in range(min(128, stored.duration * 10))],
                "link_ogg": stored.url,
                "link_mp3": stored.url,
                "access_key": stored.access_key,
            }
        case "sticker":
            images = [
                {"url": store.size_url(stored, str(side)), "width": side, "height": side}
                for side in (64, 128, 256, 352, 512)
            ]
            return {
                "product_id": 1,
                "sticker_id": stored.id,
                "images": images,
                "images_with_background": images,
            }
        case _:
            return {
                **base,
                "title": stored.title or stored.name,
                "size": len(stored.data),
                "ext": stored.ext,
                "url": stored.url,
                "date": stored.date,
                "type": doc_type(stored.ext),
                "access_key": stored.access_key,
            }


def attachment(store: FileStore, stored: StoredFile) -> JsonDict:
    """``{"type": kind, kind: object}`` for a message's ``attachments``."""
    return {"type": stored.kind, stored.kind: vk_object(store, stored)}


@dataclass
class PendingUpload:
    """A file POSTed to an upload server and not yet saved."""

    id: str
    group_id: int
    kind: str
    """``photo``, ``doc`` or ``audio_message``."""
    data: bytes
    name: str
    mime: str


class Uploads:
    """Files between the upload POST and ``photos.saveMessagesPhoto``/``docs.save``."""

    SERVER = 851234
    """The ``server`` number the photo upload server reports."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(16)
        self._pending: dict[str, PendingUpload] = {}

    def put(self, group_id: int, kind: str, data: bytes, name: str, mime: str) -> PendingUpload:
        """Keep an uploaded file until it is saved."""
        upload = PendingUpload(secrets.token_hex(10), group_id, kind, data, name, mime)
        self._pending[upload.id] = upload
        return upload

    def sign(self, text: str) -> str:
        """The ``hash`` of an upload server answer."""
        return hmac.new(self._secret, text.encode(), hashlib.md5).hexdigest()

    def verify(self, text: str, signature: str) -> bool:
        """Whether ``signature`` is this emulator's ``hash`` of ``text``."""
        return hmac.compare_digest(self.sign(text), signature)

    def take(self, upload_id: str, group_id: int) -> PendingUpload | None:
        """Remove and return an upload of this community (each is saved once)."""
        upload = self._pending.get(upload_id)
        if upload is None or upload.group_id != group_id:
            return None
        return self._pending.pop(upload_id)
