"""A WhatsApp Business Cloud API emulator for tests and the ``gateway sandbox`` demo mode.

A real aiohttp server on loopback that speaks Meta's Cloud API closely enough for an
adapter written against https://developers.facebook.com/docs/whatsapp/cloud-api/:
sending every message type (text, media by id or link, location, contacts, reply
buttons and lists, templates, reactions, replies), marking messages read, uploading and
downloading media with bearer-protected URLs, webhooks with the ``hub.challenge``
verification, ``X-Hub-Signature-256`` signatures, retries and batching, status webhooks
(``sent``, ``delivered``, ``read``, ``failed``), and the rule that shapes every WhatsApp
integration: outside the 24-hour customer service window only approved templates may be
sent (error 131047). The emulator has its own clock so tests can step past 24 hours.
Faults (Graph errors, proxy HTML pages, throughput and pair rate limits) can be injected,
once or at random at a rate, because reproducing the platform's failure modes is the
point. Customers are played from
Python (:class:`WhatsAppEmulator`) or from a web console over ``/_control``.

URL layout, relative to the base URL (what an adapter uses instead of
``https://graph.facebook.com``): ``/{version}/{phone_number_id}/messages``,
``/{version}/{phone_number_id}/media``, ``/{version}/{media_id}`` (GET, DELETE),
``/{version}/{phone_number_id}`` (GET; POST ``webhook_configuration``),
``/whatsapp_business/attachments/?mid=&ext=&hash=`` media downloads, ``/_control/...``
the console API; ``{version}`` is any ``vNN.N``.

Module map: :mod:`.models` records and Graph errors, :mod:`.media` the media store and
limits, :mod:`.state` the world and the clock, :mod:`.webhooks` verification and signed
delivery, :mod:`.outbound` request validation, :mod:`.api_messages` sends and read marks,
:mod:`.api` routing, :mod:`.faults` faults and the rate limit, :mod:`.actions` customers'
actions, :mod:`.control` the console API, :mod:`.emulator` the facade.
"""

from .emulator import WhatsAppEmulator
from .models import Call, GraphError
from .webhooks import SIGNATURE_HEADER, signature

__all__ = ["SIGNATURE_HEADER", "Call", "GraphError", "WhatsAppEmulator", "signature"]
