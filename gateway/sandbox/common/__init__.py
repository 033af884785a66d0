"""Plumbing the messenger emulators share (Telegram, VK, Viber).

Each emulator under :mod:`gateway.sandbox` is an aiohttp app that speaks one platform's
wire format; what they have in common lives here, once:

* :mod:`.server` – :class:`EmulatorServer`, serving the app on loopback (``start``/``stop``)
  or as a sub-app of the sandbox server (``make_app`` + ``set_base_url``), with the hooks
  that release waiters and close clients when it stops (``on_stop``);
* :mod:`.feed` – :class:`Feed`, the ordered, long-pollable stream of what happened that the
  web console and ``wait_for`` in tests read;
* :mod:`.control` – the ``/_control/...`` console API's handler wrapper, JSON body reader,
  base64 file decoding and the feed's long-poll route;
* :mod:`.faults` – :class:`FaultQueue` / :class:`Faults` (one-shot injected failures,
  first queued first used), :class:`RateLimiter` (a token bucket per credential) and the
  facades' ``rate_limit`` attribute (:class:`RateLimited`);
* :mod:`.outgoing` – :class:`OutgoingHttp`, the client side: an HTTP session, ordered
  per-receiver delivery queues, retries with a doubling back-off and background tasks;
* :mod:`.net` – JSON answers, proxy-style HTML error pages, the loopback check;
* :mod:`.images` – made-up pictures (stickers, test photos).

Platform specifics (error shapes, what a fault answers, what a callback looks like) stay
in each emulator's package.
"""

from .net import JsonDict, html_error, html_page, is_loopback, json_response

__all__ = ["JsonDict", "html_error", "html_page", "is_loopback", "json_response"]
