"""The HTTP API (``/api/v1``): contacts, processes and tasks, messages, operators.

Clients authenticate with a bearer token from ``api.tokens`` (scopes ``read``,
``write``, ``admin``); every answer is JSON, every error ``{"error": {"code",
"message", "details"}}``; ``GET /api/v1/openapi.json`` (no token) describes it all.
docs/api.md is the guide for CRM developers.

The route registry
------------------
An operation is declared once, with the models that validate its input and shape its
answer, and that declaration is what both serves it and documents it::

    # gateway/api/events.py
    from gateway.api import Call, In, Out, Routes

    routes = Routes("events", "Inbound events from other systems.")

    class EventIn(In):          # In: unknown fields are a 400; Out: for answers
        type: str
        '''Field docstrings become the OpenAPI descriptions.'''

    class EventAccepted(Out):
        id: str

    @routes.route("POST", "/events", scope="write", body=EventIn,
                  response=EventAccepted, status=202, errors=(409,), idempotent=True)
    async def post_event(call: Call) -> EventAccepted:
        '''Post an inbound event

        The rest of the docstring is the operation's description.'''
        event = call.body(EventIn)            # validated (400 with field paths if not)
        ...                                   # call.gateway, call.desk, call.actor,
        return EventAccepted(id=call.once)    # call.once (Idempotency-Key), call.now

- **Adding routes**: a module in ``gateway/api/`` with a module-level
  ``routes = Routes(tag, description)`` is found and mounted by :func:`install`
  (:func:`gateway.api.mount.collect`); nothing else needs editing. Paths are relative to
  ``/api/v1``; two routes with one method and path, or one handler name (the
  ``operationId``), fail at start.
- **What a route declares** (:meth:`Routes.route`): ``scope`` (``None``: no token),
  ``path_params``, ``query`` and ``body`` models (``In``), the ``response`` model and
  ``status``, the extra error statuses it may answer (``errors``: 404, 409…; 400, 401,
  403, 413, 415 and 503 are added from the rest), ``idempotent`` (takes an
  ``Idempotency-Key`` header: ``call.once`` is then stable across retries) and
  ``max_body`` (bytes; 64 KiB by default).
- **What a handler gets** (:class:`Call`): the validated models (``call.body(Model)``,
  ``call.query``, ``call.path``), the running :class:`~gateway.app.App`
  (``call.gateway``), the staff desk whose functions staff commands use
  (``call.desk``), the client's token and ``call.actor`` (``api:<token name>``, what
  events record), and the gateway's clock (``call.now``).
- **Errors**: raise :class:`ApiError` (or :func:`~gateway.api.errors.invalid`,
  ``not_found``, ``conflict``); Redis being unreachable becomes a 503 by itself; any
  other exception is logged and answered as a 500 in the same JSON shape, never a
  traceback.
- **The document**: :mod:`gateway.api.openapi` builds OpenAPI 3.1 from the same
  declarations (``model_json_schema`` with ``#/components/schemas/{model}`` refs).
"""

from gateway.api.errors import ApiError, conflict, invalid, not_found
from gateway.api.mount import install
from gateway.api.registry import Call, In, Out, Route, Routes

__all__ = [
    "ApiError",
    "Call",
    "In",
    "Out",
    "Route",
    "Routes",
    "conflict",
    "install",
    "invalid",
    "not_found",
]
