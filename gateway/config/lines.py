"""Lines (``lines:``): several staff groups, each serving some channel accounts.

A line is a support line of its own (1C-Connect's term): its staff forum group, the
operators who work in it, its working hours, SLA, quick replies and the accounts whose
customers it serves — say a ``sales`` line for the VK community and the sales bot, a
``service`` line for Viber and WhatsApp. Without ``lines`` the ``staff`` group is the
only line, named ``main``, and the config stays as simple as that.

The first line is the default: it serves the accounts no line names, and contacts made
through the HTTP API. Operators are one list (``staff.operators``): someone in two
lines' groups is one operator, with one status and one capacity.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.config.accounts import Responsible
from gateway.config.sections import _NAME, QuickReply, WorkingHours, _Section, supergroup

MAIN = "main"
"""The name of the one line a config without ``lines`` has."""


class LineSla(_Section):
    """A line's own deadlines; unset values are the global ``sla``'s."""

    first_response_minutes: float | None = Field(None, gt=0)
    next_response_minutes: float | None = Field(None, gt=0)
    take_within_minutes: float | None = Field(None, gt=0)


class Line(_Section):
    name: str = Field(pattern=_NAME)
    title: str | None = None
    chat_id: int
    """The line's staff forum supergroup (an id like -1001234567890). The staff bot
    (and the relay bots) must be members of every line's group."""
    accounts: tuple[str, ...] = ()
    """The channel accounts whose customers this line serves (the first line also takes
    every account no line names)."""
    operators: tuple[int, ...] = ()
    """Who works here (``staff.operators`` ids): only they get this line's tasks and
    escalations. Empty: every operator."""
    responsible: Responsible | None = None
    """Who gets the line's new tasks when their account names nobody, and tasks moved
    here with ``/line``. Unset: they wait for whoever takes them."""
    working_hours: WorkingHours | None = None
    """For the line's accounts that have no working hours of their own."""
    sla: LineSla = LineSla()
    templates: tuple[QuickReply, ...] = ()
    """Quick replies offered only in this line's group (besides the global ``templates``)."""

    _supergroup = field_validator("chat_id")(supergroup)

    @property
    def label(self) -> str:
        return self.title or self.name
