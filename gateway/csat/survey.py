"""One asked survey as stored in Redis, and where its task lives now."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from redis.asyncio.client import Pipeline

from gateway.model import AccountId, ChatId, ContactId
from gateway.process import Process
from gateway.store import keys
from gateway.store.processes import PROCESS


class Survey(BaseModel):
    """A survey asked in a customer's chat about one closed task (the JSON of
    ``keys.csat_survey`` and ``keys.csat_chat``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    contact: ContactId
    """The contact when asked (a merge may have moved it since: see ``Contacts.survivor``)."""
    process: str
    task: int
    account: AccountId
    chat: ChatId
    asked_at: datetime
    due: datetime
    """Answers after this are ordinary messages; the survey is recorded unanswered."""

    @property
    def id(self) -> str:
        """How the contact's pending set and Telegram's buttons name it."""
        return f"{self.process}/{self.task}"

    @property
    def key(self) -> str:
        return keys.csat_survey(self.process, self.task)

    @property
    def chat_key(self) -> str:
        return keys.csat_chat(self.account, self.chat)


class Outcome(StrEnum):
    RATED = "rated"
    REPEATED = "repeated"
    """This very event was taken as a rating before (a redelivered entry): nothing more."""
    CLOSED = "closed"
    """The survey was answered already, or its wait is over."""
    NOT_A_RATING = "not_a_rating"
    """A rating-shaped text after an operator answered a newer task: an answer to them."""


def parse_id(survey_id: str) -> tuple[str, int] | None:
    """``(process, task)`` of a survey id (``None`` if malformed)."""
    process, _, task = survey_id.rpartition("/")
    if not process or not task.isdigit():
        return None
    return process, int(task)


def timer(contact_id: str) -> str:
    """The contact's ``csat`` timer member (see ``keys.CSAT``)."""
    return f"{keys.CSAT}:{contact_id}"


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def locate(
    pipe: Pipeline, contact_id: str, number: str
) -> tuple[Process | None, int | None, Process | None]:
    """``(process, archive index or None if current, current process)`` for the process
    numbered ``number``: current, or archived by a new day (or a merge) since the survey
    was asked; ``(None, None, current)`` if it is gone (trimmed from the archive).
    Reads under the caller's WATCH."""
    raw = await pipe.get(keys.process(contact_id))
    current = PROCESS.validate_json(raw) if raw is not None else None
    if current is not None and current.number == number:
        return current, None, current
    needle = number.encode()
    for index, item in enumerate(await pipe.lrange(keys.process_archive(contact_id), 0, -1)):
        if needle in item:  # cheap first: parse only the candidates
            archived = PROCESS.validate_json(item)
            if archived.number == number:
                return archived, index, current
    return None, None, current
