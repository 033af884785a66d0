"""A VK (VKontakte) community API emulator for tests and the ``gateway sandbox`` demo mode.

A real aiohttp server on loopback that speaks the VK API 5.199 wire format for a
community access token closely enough for an unmodified ``vk_api`` client: messages
(send with ``random_id`` idempotency, edit, mark as read), ``users.get``, photo and
document uploads in VK's three steps, the Bots Long Poll server with its ``failed``
answers, and the Callback API with confirmation, secrets and retries. Faults (VK error
objects, proxy HTML pages, upload failures, a per-token rate limit) can be injected,
once or at random at a rate, because reproducing VK's failure modes is the point.
People are played from Python (:class:`VkEmulator`) or from the web console over
``/_control``.

URL layout, relative to the base URL (what ``api_server`` of a ``kind: vk`` channel is
set to): ``/method/{name}`` the API, ``/upload/photo/{group_id}`` and
``/upload/doc/{group_id}`` upload servers, ``/files/{key}/{name}`` files,
``/longpoll/{group_id}`` the long poll server, ``/_control/...`` the console API.

Module map: :mod:`.models` records and errors, :mod:`.files` file store and upload
signing, :mod:`.state` the world and the event fan-out, :mod:`.longpoll` the Bots Long
Poll server, :mod:`.callback` Callback API delivery, :mod:`.faults` faults and the rate
limit, :mod:`.wire` request/answer encoding, :mod:`.api` routing, :mod:`.api_messages` /
:mod:`.api_groups` / :mod:`.api_media` method handlers, :mod:`.actions` people's
actions, :mod:`.control` the console API, :mod:`.emulator` the facade.
"""

from .emulator import VkEmulator
from .models import Call, VkApiError

__all__ = ["Call", "VkApiError", "VkEmulator"]
