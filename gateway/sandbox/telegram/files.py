"""In-memory file storage with per-bot file ids, and the Bot API media objects built on it.

Real Telegram file ids are only valid for the bot that received them; code that passes a
file_id from one bot to another breaks in production. The emulator reproduces that: every
file_id encodes its owner (a bot id, or ``0`` for the emulator's neutral human view), and
message dicts are re-keyed for each bot when delivered (:meth:`FileStore.rebind`).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import struct
from dataclasses import dataclass
from typing import Any

from .models import NEUTRAL_OWNER, WRONG_FILE_ID, JsonDict, bad_request

KINDS = ("photo", "document", "audio", "voice", "video", "video_note", "animation", "sticker")

_ID_PREFIX = {
    "photo": "AgAC",
    "document": "BQAC",
    "audio": "CQAC",
    "voice": "AwAC",
    "video": "BAAC",
    "video_note": "DQAC",
    "animation": "CgAC",
    "sticker": "CAAC",
}
_DIRECTORY = {
    "photo": "photos",
    "document": "documents",
    "audio": "music",
    "voice": "voice",
    "video": "videos",
    "video_note": "video_notes",
    "animation": "animations",
    "sticker": "stickers",
}
_DEFAULT_MIME = {
    "photo": "image/jpeg",
    "document": "application/octet-stream",
    "audio": "audio/mpeg",
    "voice": "audio/ogg",
    "video": "video/mp4",
    "video_note": "video/mp4",
    "animation": "video/mp4",
    "sticker": "image/webp",
}
_THUMB_SIDE = 90
_DEFAULT_PHOTO_SIZE = (640, 480)
# A tiny but valid-looking WebP container used for stickers sent by emoji only.
STICKER_PLACEHOLDER = (
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00"
    b"\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
)


@dataclass
class StoredFile:
    """One stored file; a photo's thumbnail is a second StoredFile sharing the bytes."""

    serial: int
    kind: str
    data: bytes
    mime_type: str
    file_name: str | None
    file_path: str
    width: int = 0
    height: int = 0
    duration: int = 0
    thumb: StoredFile | None = None

    @property
    def unique_id(self) -> str:
        """The owner-independent ``file_unique_id``."""
        return "AQAD" + _b64(f"u{self.serial}")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or JPEG image from its header, if recognisable."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:4] == b"GIF8" and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None


class FileStore:
    """All files uploaded by bots or users, addressable by file id and by file path."""

    def __init__(self) -> None:
        self._by_serial: dict[int, StoredFile] = {}
        self._by_path: dict[str, StoredFile] = {}

    def add(
        self,
        kind: str,
        data: bytes,
        *,
        mime_type: str | None = None,
        file_name: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> StoredFile:
        """Store bytes as a new file of ``kind``, inferring what the client did not say."""
        if kind not in KINDS:
            raise ValueError(f"unknown media kind {kind!r}")
        mime = mime_type or _guess_mime(kind, file_name)
        if kind in ("photo", "sticker") and (width is None or height is None):
            sniffed = image_size(data)
            default = (512, 512) if kind == "sticker" else _DEFAULT_PHOTO_SIZE
            width, height = sniffed or default
        elif kind in ("video", "animation", "video_note"):
            width = width or 640
            height = height or (640 if kind == "video_note" else 360)
        if duration is None:
            duration = _guess_duration(kind, len(data))
        stored = self._store(kind, data, mime, file_name, width or 0, height or 0, duration)
        if kind == "photo":
            scale = min(1.0, _THUMB_SIDE / max(stored.width, stored.height, 1))
            stored.thumb = self._store(
                kind,
                data,
                mime,
                None,
                max(1, round(stored.width * scale)),
                max(1, round(stored.height * scale)),
                0,
            )
        return stored

    def _store(
        self,
        kind: str,
        data: bytes,
        mime: str,
        file_name: str | None,
        width: int,
        height: int,
        duration: int,
    ) -> StoredFile:
        serial = len(self._by_serial) + 1
        ext = mimetypes.guess_extension(mime) or ".bin"
        if file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[1]
        if kind == "photo":
            ext = ".jpg"
        path = f"{_DIRECTORY[kind]}/file_{serial}{ext}"
        stored = StoredFile(serial, kind, data, mime, file_name, path, width, height, duration)
        self._by_serial[serial] = stored
        self._by_path[path] = stored
        return stored

    @staticmethod
    def file_id(stored: StoredFile, owner: int) -> str:
        """The file id of ``stored`` as seen by ``owner`` (a bot id or the neutral owner)."""
        return _ID_PREFIX[stored.kind] + _b64(f"{owner}:{stored.serial}")

    def decode(self, file_id: str) -> tuple[int, StoredFile] | None:
        """``(owner, file)`` for a well-formed id of a stored file, else ``None``."""
        body = file_id[4:]
        try:
            owner_text, serial_text = (
                base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split(":")
            )
            owner, serial = int(owner_text), int(serial_text)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        stored = self._by_serial.get(serial)
        if stored is None or _ID_PREFIX[stored.kind] != file_id[:4]:
            return None
        return owner, stored

    def resolve(self, file_id: str, owner: int | None) -> StoredFile:
        """The file behind ``file_id``; a 400 ApiError if unknown or owned by someone else.

        ``owner=None`` accepts any owner (the emulator's own Python and control APIs).
        """
        decoded = self.decode(file_id)
        if decoded is None or (owner is not None and decoded[0] != owner):
            raise bad_request(WRONG_FILE_ID)
        return decoded[1]

    def by_path(self, path: str) -> StoredFile | None:
        """The file served at ``/file/bot<token>/<path>``."""
        return self._by_path.get(path)

    def rebind(self, obj: Any, owner: int) -> Any:
        """A deep copy of a Bot API object with every neutral file id re-keyed for ``owner``."""
        if isinstance(obj, dict):
            out: JsonDict = {}
            for key, value in obj.items():
                if key == "file_id" and isinstance(value, str):
                    decoded = self.decode(value)
                    out[key] = self.file_id(decoded[1], owner) if decoded else value
                else:
                    out[key] = self.rebind(value, owner)
            return out
        if isinstance(obj, list):
            return [self.rebind(item, owner) for item in obj]
        return obj

    def media_object(self, stored: StoredFile, owner: int = NEUTRAL_OWNER) -> JsonDict:
        """The Bot API object (Document, Voice, ...) for a non-photo file."""
        data: JsonDict = {
            "file_id": self.file_id(stored, owner),
            "file_unique_id": stored.unique_id,
            "file_size": len(stored.data),
        }
        kind = stored.kind
        if kind in ("photo", "video", "animation", "sticker"):
            data.update(width=stored.width, height=stored.height)
        if kind in ("audio", "voice", "video", "video_note", "animation"):
            data["duration"] = stored.duration
        if kind == "video_note":
            data["length"] = stored.width
        if kind == "sticker":
            data.update(type="regular", is_animated=False, is_video=False)
        if kind in ("document", "audio", "voice", "video", "animation"):
            data["mime_type"] = stored.mime_type
        if kind in ("document", "audio", "video", "animation") and stored.file_name:
            data["file_name"] = stored.file_name
        return data

    def photo_sizes(self, stored: StoredFile, owner: int = NEUTRAL_OWNER) -> list[JsonDict]:
        """A photo as Telegram sends it: a list of PhotoSize, smallest first."""
        sizes = [stored.thumb, stored] if stored.thumb is not None else [stored]
        return [
            {
                "file_id": self.file_id(size, owner),
                "file_unique_id": size.unique_id,
                "file_size": len(size.data),
                "width": size.width,
                "height": size.height,
            }
            for size in sizes
        ]

    def content(self, stored: StoredFile, extra: JsonDict | None = None) -> JsonDict:
        """The Message fields for a media file, in the neutral view.

        ``extra`` adds kind-specific fields (emoji of a sticker, performer of an audio).
        Animations also carry ``document``, as in real Telegram.
        """
        if stored.kind == "photo":
            return {"photo": self.photo_sizes(stored)}
        media = self.media_object(stored)
        media.update(extra or {})
        fields: JsonDict = {stored.kind: media}
        if stored.kind == "animation":
            fields["document"] = {
                key: media[key]
                for key in ("file_id", "file_unique_id", "file_size", "mime_type", "file_name")
                if key in media
            }
        return fields

    def file_object(self, stored: StoredFile, owner: int) -> JsonDict:
        """The ``getFile`` answer."""
        return {
            "file_id": self.file_id(stored, owner),
            "file_unique_id": stored.unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }


def _guess_mime(kind: str, file_name: str | None) -> str:
    if file_name and kind in ("document", "audio", "video", "animation"):
        guessed, _ = mimetypes.guess_type(file_name)
        if guessed:
            return guessed
    return _DEFAULT_MIME[kind]


def _guess_duration(kind: str, size: int) -> int:
    """A plausible duration in seconds from the byte size (Telegram would probe the media)."""
    if kind in ("voice", "audio"):
        return max(1, size // 4000)
    if kind in ("video", "video_note", "animation"):
        return max(1, size // 200_000)
    return 0
