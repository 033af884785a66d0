"""A Viber REST Bot API emulator for tests and the ``gateway sandbox`` demo mode.

A real aiohttp server on loopback that speaks the REST Bot API
(https://developers.viber.com/docs/api/rest-bot-api/) closely enough for an unmodified
``viberbot`` client: ``set_webhook`` with Viber's check of the URL, ``send_message`` with
every message type and its validation, ``get_account_info``, ``get_user_details``,
``get_online``, and signed callbacks to the webhook with retries — ``message``,
``subscribed``, ``unsubscribed``, ``conversation_started`` (whose HTTP answer may be the
welcome message), ``delivered``, ``seen`` and ``failed``. A bot's pictures, videos and
files are downloaded from the URLs it gives, as Viber does, and a failed download is a
``failed`` callback. Message tokens are 64-bit integers above 2**53, written exactly.
Faults (Viber statuses, proxy HTML pages, a per-bot rate limit) can be injected, once or
at random at a rate. People
are played from Python (:class:`ViberEmulator`) or from the web console over
``/_control``.

URL layout, relative to the base URL (what ``api_server`` of a ``kind: viber`` channel is
set to): ``/{endpoint}`` the REST API (``/send_message``, ...), ``/files/{key}/{name}``
media, ``/_control/...`` the console API.

Module map: :mod:`.models` records and statuses, :mod:`.validate` message checks,
:mod:`.files` media, :mod:`.state` the world and the console feed, :mod:`.callbacks`
signed callbacks and media downloads, :mod:`.endpoints` the REST endpoints, :mod:`.api`
routing, :mod:`.actions` people's actions and message delivery, :mod:`.control` the
console API, :mod:`.emulator` the facade.
"""

from .callbacks import SIGNATURE_HEADER, sign
from .emulator import ViberEmulator
from .models import STATUS_NAMES, Call, ViberError

__all__ = ["SIGNATURE_HEADER", "STATUS_NAMES", "Call", "ViberEmulator", "ViberError", "sign"]
