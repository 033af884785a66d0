"""A Telegram Bot API emulator for tests and the ``gateway sandbox`` demo mode.

A real aiohttp server on loopback that speaks the Bot API wire format closely enough for
the unmodified aiogram 3 client (``AiohttpSession(api=TelegramAPIServer.from_base(url))``):
private chats and forum supergroups with topics, media with per-bot file ids, getUpdates
long polling and webhook push with retries, plus fault injection and flood limits, because
reproducing Telegram's failure modes is the point. People (customers, operators) are
played from Python (:class:`TelegramEmulator`) or from the web console over ``/_control``.

Module map: :mod:`.models` records, :mod:`.files` file store and media objects,
:mod:`.state` the world, :mod:`.events` the console feed, :mod:`.updates` update
queues, :mod:`.webhook` webhook push, :mod:`.faults`
faults and flood limits, :mod:`.wire` request/answer encoding, :mod:`.api` routing,
:mod:`.api_core` / :mod:`.api_send` / :mod:`.api_manage` method handlers,
:mod:`.actions` user-side actions, :mod:`.control` the console API,
:mod:`.emulator` the facade.
"""

from .emulator import TelegramEmulator
from .models import ApiError, Call
from .webhook import WebhookRejectedError

__all__ = ["ApiError", "Call", "TelegramEmulator", "WebhookRejectedError"]
