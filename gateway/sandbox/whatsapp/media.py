"""Media of the emulated Cloud API: uploads, files customers send, signed download URLs.

The real flow (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media):

1. ``POST /{phone_number_id}/media`` (multipart ``file``, ``type`` = MIME type,
   ``messaging_product``) stores a file and answers its numeric id;
2. a message refers to it as ``{"image": {"id": ...}}`` — or gives a ``link`` that the
   platform downloads itself;
3. files customers send arrive in webhooks as ids; ``GET /{media_id}`` answers a short-
   lived ``url``, and downloading that URL needs the same bearer token.

Supported types and sizes are Meta's ("Supported media types"): images JPEG/PNG up to
5 MB, audio and video up to 16 MB, documents up to 100 MB, WebP stickers up to 500 KB.
Download URLs here are ``{base}/whatsapp_business/attachments/?mid=&ext=&hash=``, valid
for 5 minutes of the emulator's clock and signed, like Meta's lookaside URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import mimetypes
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from yarl import URL

MB = 1024 * 1024
LIMITS = {
    "image": 5 * MB,
    "video": 16 * MB,
    "audio": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * 1024,
}
"""Largest file of each message type (bytes)."""
MIME_TYPES: dict[str, tuple[str, ...]] = {
    "image": ("image/jpeg", "image/png"),
    "sticker": ("image/webp",),
    "video": ("video/mp4", "video/3gpp"),
    "audio": ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg", "audio/opus"),
    "document": (
        "text/plain",
        "application/pdf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
}
"""The MIME types Meta accepts for each message type."""
URL_LIFETIME = 300
"""Seconds a download URL stays valid."""
DOWNLOAD_PATH = "/whatsapp_business/attachments/"


def kind_of(mime: str) -> str | None:
    """The message type a MIME type can be sent as (``None``: not supported). Parameters
    such as ``; codecs=opus`` are ignored."""
    bare = mime.split(";", 1)[0].strip().lower()
    return next((kind for kind, types in MIME_TYPES.items() if bare in types), None)


def fits(kind: str, mime: str) -> bool:
    """Whether a file of ``mime`` may be sent as a ``kind`` message. Any supported type
    may go as a document; images may not go as stickers and vice versa."""
    found = kind_of(mime)
    return found == kind or (kind == "document" and found is not None)


def sniff_image(data: bytes) -> str:
    """The MIME type of image bytes (PNG, WebP or, by default, JPEG)."""
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


def guess_mime(filename: str) -> str:
    """A document's MIME type from its name (``application/pdf`` when unknown, the most
    common document customers send)."""
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/pdf"


@dataclass
class StoredMedia:
    """One file with its Cloud API identity."""

    id: str
    owner: str
    """The phone number id that uploaded or received it."""
    data: bytes
    mime_type: str
    filename: str | None = None

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes (as ``GET /{media_id}`` reports it)."""
        return hashlib.sha256(self.data).hexdigest()

    def webhook_object(self, *, caption: str | None = None) -> dict[str, object]:
        """The ``image``/``document``/... object of an inbound message webhook."""
        data: dict[str, object] = {"mime_type": self.mime_type, "sha256": self.sha256}
        data["id"] = self.id
        if caption:
            data["caption"] = caption
        if self.filename:
            data["filename"] = self.filename
        return data


class MediaStore:
    """Every file of the emulator by id, with signed, expiring download URLs."""

    def __init__(self, base_url: Callable[[], str], now: Callable[[], float]) -> None:
        self._base_url = base_url
        self._now = now
        self._secret = secrets.token_bytes(16)
        self._files: dict[str, StoredMedia] = {}
        self._ids = itertools.count(1_037_543_291_543_636 + secrets.randbelow(10**12))

    def add(
        self, owner: str, data: bytes, mime_type: str, filename: str | None = None
    ) -> StoredMedia:
        """Store a file of phone number ``owner``."""
        stored = StoredMedia(str(next(self._ids)), owner, data, mime_type, filename)
        self._files[stored.id] = stored
        return stored

    def get(self, media_id: str) -> StoredMedia | None:
        """A file by id (``None`` when unknown or deleted)."""
        return self._files.get(media_id)

    def delete(self, media_id: str) -> bool:
        """Forget a file; whether it existed."""
        return self._files.pop(media_id, None) is not None

    def _sign(self, media_id: str, expires: int) -> str:
        text = f"{media_id}:{expires}".encode()
        return hmac.new(self._secret, text, hashlib.sha256).hexdigest()[:32]

    def url(self, stored: StoredMedia) -> str:
        """A download URL for ``stored``, valid for :data:`URL_LIFETIME` seconds."""
        expires = int(self._now()) + URL_LIFETIME
        query = {"mid": stored.id, "ext": str(expires), "hash": self._sign(stored.id, expires)}
        return str(URL(self._base_url() + DOWNLOAD_PATH).with_query(query))

    def resolve(self, mid: str, ext: str, signature: str) -> StoredMedia | None:
        """The file a download URL points at; ``None`` if tampered with or expired."""
        if not ext.isdigit() or not hmac.compare_digest(self._sign(mid, int(ext)), signature):
            return None
        if int(ext) < self._now():
            return None
        return self._files.get(mid)
