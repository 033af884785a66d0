"""The route registry: what each operation is, declared once.

A :class:`Route` names its method, path, required scope, and the pydantic models of its
path parameters, query, body and response. The same declaration drives both sides: the
dispatcher (:mod:`gateway.api.http`) validates requests and shapes answers with these
models, and :mod:`gateway.api.openapi` emits the OpenAPI document from them — so the
document cannot drift from what the server accepts.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from gateway.config import ApiToken
from gateway.config.integrations import Scope

if TYPE_CHECKING:
    from gateway.app import App
    from gateway.staff.desk import Desk

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
M = TypeVar("M", bound=BaseModel)
MAX_BODY = 64 * 1024
"""Bytes a request body may have unless its route says otherwise."""
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_.:-]{1,64}$"


class In(BaseModel):
    """Base of request models (path, query, body): unknown fields are errors, so a typo
    (``?stauts=new``) is a 400 rather than a filter silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Out(BaseModel):
    """Base of response models."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)


@dataclass(frozen=True, slots=True)
class Call:
    """One request, authenticated and validated, as a handler sees it."""

    request: web.Request
    gateway: App
    client: ApiToken | None
    """The token's client (``None`` only on routes that need no token)."""
    operation: str
    idempotency_key: str | None = None
    path_params: BaseModel | None = None
    query_params: BaseModel | None = None
    body_params: BaseModel | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def actor(self) -> str:
        """Who acted, as events and logs record it: ``api:<token name>``."""
        return f"api:{self.client.name}" if self.client is not None else "api"

    @property
    def once(self) -> str:
        """The key that makes this request's effect happen once: the client's
        ``Idempotency-Key`` (a retry with the same key changes nothing more), or a
        fresh id."""
        return f"{self.actor}:{self.operation}:{self.idempotency_key or self.request_id}"

    @property
    def now(self) -> datetime:
        """The gateway's clock (the one the staff side uses)."""
        return self.gateway.clock()

    @property
    def desk(self) -> Desk:
        """The staff desk: the same objects staff commands and buttons act through."""
        return self.gateway.pipeline.desk

    def path(self, model: type[M]) -> M:
        return _typed(self.path_params, model)

    def query(self, model: type[M]) -> M:
        return _typed(self.query_params, model)

    def body(self, model: type[M]) -> M:
        return _typed(self.body_params, model)


def _typed(value: BaseModel | None, model: type[M]) -> M:
    if not isinstance(value, model):  # a handler asking for a model its route lacks
        raise TypeError(f"expected {model.__name__}, the route validated {type(value).__name__}")
    return value


Handler = Callable[[Call], Awaitable[BaseModel]]


@dataclass(frozen=True, slots=True)
class Route:
    method: Method
    path: str
    """Relative to ``/api/v1``, with ``{name}`` parameters (``/contacts/{contact_id}``)."""
    handler: Handler
    scope: Scope | None
    """What the token must have (``None``: no token needed)."""
    response: type[BaseModel]
    status: int = 200
    path_params: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    """Statuses besides the ones every route may answer (e.g. 404, 409)."""
    idempotent: bool = False
    """Takes an ``Idempotency-Key`` header (actions with an effect)."""
    max_body: int = MAX_BODY
    tag: str = ""
    summary: str = ""
    description: str = ""

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


class Routes:
    """A module's routes, added with the decorators; :func:`gateway.api.install` mounts
    every module of ``gateway/api/`` that has a module-level ``routes = Routes(...)``."""

    def __init__(self, tag: str, description: str = "") -> None:
        self.tag = tag
        self.description = description
        self.routes: list[Route] = []

    def route(
        self,
        method: Method,
        path: str,
        *,
        scope: Scope | None,
        response: type[BaseModel],
        status: int = 200,
        path_params: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        errors: tuple[int, ...] = (),
        idempotent: bool = False,
        max_body: int = MAX_BODY,
    ) -> Callable[[Handler], Handler]:
        """Declare ``handler`` as the operation ``method path``; its docstring's first
        line is the summary, the rest the description."""

        def add(handler: Handler) -> Handler:
            doc = inspect.cleandoc(handler.__doc__ or "")
            summary, _, description = doc.partition("\n")
            self.routes.append(
                Route(
                    method=method,
                    path=path,
                    handler=handler,
                    scope=scope,
                    response=response,
                    status=status,
                    path_params=path_params,
                    query=query,
                    body=body,
                    errors=errors,
                    idempotent=idempotent,
                    max_body=max_body,
                    tag=self.tag,
                    summary=summary.strip(),
                    description=description.strip(),
                )
            )
            return handler

        return add
