"""``/api/v1/webhooks``: the CRM webhooks' dead letters — deliveries a target refused
for good, or kept failing past ``retry_for_hours`` — to read, replay and discard
(scope ``admin``; see docs/integrations.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.api.errors import invalid, not_found
from gateway.api.registry import Call, In, Routes
from gateway.integrations.dead import DeadLetterError, DeadPage, Moved

routes = Routes(
    "webhooks",
    "The CRM webhooks' dead letters: deliveries that failed for good, kept to replay.",
)


class DeadQuery(In):
    target: str | None = Field(None, max_length=32)
    """Only this target's (``integrations.webhooks[].id``); all by default."""
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, max_length=32)
    """``next_cursor`` of the previous page."""


class ReplayIn(In):
    ids: list[str] | None = Field(None, min_length=1, max_length=500)
    """Delivery ids (``X-Gateway-Delivery``) to queue again, each at the end of its
    contact's queue for its target."""
    target: str | None = Field(None, max_length=32)
    """Or: every dead letter of this target."""

    @model_validator(mode="after")
    def _one(self) -> ReplayIn:
        if (self.ids is None) == (self.target is None):
            raise ValueError("give either ids or target")
        return self


class DiscardIn(In):
    ids: list[str] = Field(min_length=1, max_length=500)
    """Delivery ids to delete for good."""


def _known(call: Call, target: str | None) -> None:
    if target is not None and target not in {t.id for t in call.gateway.webhooks.targets}:
        raise not_found(f"No webhook target {target!r} is configured.")


@routes.route(
    "GET", "/webhooks/dead", scope="admin", query=DeadQuery, response=DeadPage, errors=(404,)
)
async def list_dead(call: Call) -> DeadPage:
    """List dead letters

    Oldest first, with the last error, the number of attempts and the body the target
    was sent."""
    query = call.query(DeadQuery)
    _known(call, query.target)
    try:
        return await call.gateway.webhooks.list_dead(query.target, query.limit, query.cursor)
    except DeadLetterError as exc:
        raise invalid(["query", "cursor"], str(exc)) from None


@routes.route(
    "POST", "/webhooks/dead/replay", scope="admin", body=ReplayIn, response=Moved, errors=(404,)
)
async def replay_dead(call: Call) -> Moved:
    """Replay dead letters

    Each goes back to the end of its contact's queue for its target, with the same
    delivery id (receivers that deduplicate by it stay correct); ``missing`` lists
    ids that were not dead letters (any more)."""
    body = call.body(ReplayIn)
    _known(call, body.target)
    try:
        return await call.gateway.webhooks.replay(body.ids, target=body.target)
    except DeadLetterError as exc:
        raise invalid(["body", "ids" if body.ids else "target"], str(exc)) from None


@routes.route("POST", "/webhooks/dead/discard", scope="admin", body=DiscardIn, response=Moved)
async def discard_dead(call: Call) -> Moved:
    """Discard dead letters

    Deleted for good; ``missing`` lists ids that were not dead letters."""
    return await call.gateway.webhooks.discard(call.body(DiscardIn).ids)
