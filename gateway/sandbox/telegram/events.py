"""The console's event feed: what happened in the emulated Telegram, in order.

The web console long-polls it (``GET /_control/events``) and ``wait_for`` in tests scans
it, so both see messages, edits, deletions and topic changes as they happen.
"""

from __future__ import annotations

from typing import Any

from ..common.feed import Feed
from .models import ChatRecord, JsonDict


class EventLog(Feed):
    """The feed of the emulated Telegram; events name the chat (and, in a private chat,
    the bot) they happened in."""

    def emit(self, kind: str, chat: ChatRecord, **fields: Any) -> JsonDict:
        """Record an event about ``chat``; payload objects are copied (snapshots)."""
        scope: JsonDict = {"chat_id": chat.id}
        if chat.type == "private":
            scope["bot_id"] = chat.bot_id
        return self.record(kind, scope, fields)
