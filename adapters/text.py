"""Text helpers every adapter shares (Telegram and VK both cap a message at 4096
characters)."""

from __future__ import annotations


def split_text(text: str, limit: int = 4096) -> list[str]:
    """Split at paragraph, then line, then word boundaries.

    Whitespace at a cut is dropped and no chunk is blank (Telegram rejects an empty
    text); every other character is kept, in order.
    """
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = rest.rfind(sep, 0, limit)
            if cut > 0:
                break
        if cut <= 0:
            cut = limit
        if rest[:cut].strip():
            chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest.strip() or not chunks:
        chunks.append(rest)
    return chunks
