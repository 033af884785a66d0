"""Files of the emulated Viber: what customers send and what the emulator downloaded.

Viber's media are public links on its servers: a customer's picture reaches a bot as a
URL, and a bot's picture is a URL Viber downloads. The emulator keeps both kinds here and
serves them at ``{base}/files/{key}/{name}`` (``key`` random, so URLs are unguessable),
with their content type and length.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class StoredFile:
    """One file and the URL it is served at."""

    key: str
    name: str
    mime: str
    data: bytes
    url: str


def image_name(data: bytes, stem: str = "image") -> str:
    """A file name with the extension the picture's magic bytes say (JPEG by default)."""
    if data.startswith(b"\x89PNG"):
        return f"{stem}.png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return f"{stem}.gif"
    return f"{stem}.jpg"


class FileStore:
    """All files, by URL key."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self._by_key: dict[str, StoredFile] = {}

    def add(self, data: bytes, name: str, mime: str = "") -> StoredFile:
        """Store ``data``; the content type is guessed from ``name`` when not given."""
        key = secrets.token_hex(12)
        mime = mime or mimetypes.guess_type(name)[0] or "application/octet-stream"
        url = f"{self._base_url()}/files/{key}/{quote(name)}"
        stored = StoredFile(key, name, mime, data, url)
        self._by_key[key] = stored
        return stored

    def by_key(self, key: str) -> StoredFile | None:
        """A file by the key in its URL."""
        return self._by_key.get(key)

    def by_url(self, url: str) -> StoredFile | None:
        """A file by its URL (``None`` if not one of the emulator's)."""
        parts = url.split("/")
        return self._by_key.get(parts[-2]) if len(parts) >= 2 else None
