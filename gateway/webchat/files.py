"""Files visitors upload: a safe name, and the type the bytes really are."""

from __future__ import annotations

import re
from urllib.parse import unquote

from adapters.webchat import IMAGE_TYPES


def safe_name(raw: str) -> str:
    """A file name safe in a header and on disk."""
    raw = unquote(raw)  # browsers and aiohttp percent-encode some characters
    name = re.sub(r"[^\w.\- ()]+", "_", raw.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip()
    return (name or "file")[:100]


MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


def sniffed(data: bytes, declared: str) -> str:
    """The file's type from its first bytes where they tell (an image that is not one
    is refused as what it really is); else what the browser declared."""
    for magic, mime in MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    declared = declared.split(";")[0].strip().lower()
    if declared in IMAGE_TYPES or declared == "application/pdf":
        return "application/octet-stream"  # claims a type its bytes are not
    return declared or "application/octet-stream"
