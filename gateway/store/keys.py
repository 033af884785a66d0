"""Every Redis key the gateway uses, with its lifetime beside it.

Keep all key shapes here (as arq keeps them in ``constants.py``): a grep for a key
prefix must land in this file. ``PREFIX`` separates several gateways on one Redis.
"""

from __future__ import annotations

from datetime import timedelta

PREFIX = "gw"
GROUP = "workers"
"""The consumer group every stream is read through."""

# Streams ------------------------------------------------------------------------------
# Durable queues, partitioned by contact so that one consumer at a time owns a
# contact's order. Entries are acknowledged *and* deleted in the transaction that stores
# their effects, so XLEN is the queue depth. No TTL: an entry lives until handled.
INBOUND = "in"
STAFF_OUT = "out:staff"
CUSTOMER_OUT = "out:customer"
FAMILIES = (INBOUND, STAFF_OUT, CUSTOMER_OUT)


def stream(family: str, partition: int) -> str:
    return f"{PREFIX}:{family}:{partition}"


def dead_letters(family: str) -> str:
    """Entries that failed repeatedly for a non-transient reason (kept; replayable)."""
    return f"{PREFIX}:dead:{family}"


# Idempotency ----------------------------------------------------------------------------
# ``seen``: platform event keys already accepted (TTL: bus.dedup_ttl_days, ≥ 8 days,
# because Telegram may redeliver for 24 h and Meta retries for days).
# ``done``: outbound job ids already sent, with what the platform answered (same TTL),
# so a job redelivered after a crash is not sent twice.
def seen(event_key: str) -> str:
    return f"{PREFIX}:seen:{event_key}"


def done(out_id: str) -> str:
    return f"{PREFIX}:done:{out_id}"


def applied(event_key: str) -> str:
    """An inbound event's business-process step is stored (same TTL as ``seen``)."""
    return f"{PREFIX}:applied:{event_key}"


# Leases ---------------------------------------------------------------------------------
# Ownership of a partition or a poller by one worker (TTL: bus.lease_seconds, renewed
# at a third of it). ``members`` is a sorted set of live workers scored by expiry.
def media(media_id: str) -> str:
    """Bytes of a file served to a messenger by URL (expires with the URL)."""
    return f"{PREFIX}:media:{media_id}"


def round_robin(role: str) -> str:
    """The turn counter of a role's round-robin assignment (shared by every replica)."""
    return f"{PREFIX}:rr:{role}"


def poll_cursor(account: str) -> str:
    """Where an account's long-poll position is kept (after its batch is stored), so a
    restart resumes there instead of at "now" (VK) and nothing in between is skipped."""
    return f"{PREFIX}:cursor:{account}"


def lease(name: str) -> str:
    return f"{PREFIX}:lease:{name}"


def members(family: str) -> str:
    return f"{PREFIX}:members:{family}"


# Contacts and topics ----------------------------------------------------------------------
# Permanent (no TTL): they are the product's memory of who is who.
CONTACT_SEQ = f"{PREFIX}:seq:contact"


def identity(account: str, user_id: str) -> str:
    """(channel account, platform user id) → contact id."""
    return f"{PREFIX}:identity:{account}:{user_id}"


def contact(contact_id: str) -> str:
    """Hash: display_name, username, channel, account, user_id, first_seen, last_seen,
    reply_account/reply_chat/reply_channel (where replies go) and last_message (the
    customer's latest message there, for read receipts)."""
    return f"{PREFIX}:contact:{contact_id}"


def contact_identities(contact_id: str) -> str:
    """Set of ``account:user_id``: every messenger identity of the person. An absorbed
    contact keeps its set (what a merge brought in, for unmerge)."""
    return f"{PREFIX}:contact-ids:{contact_id}"


def contact_phones(contact_id: str) -> str:
    """Set of the contact's phones (E.164)."""
    return f"{PREFIX}:contact-phones:{contact_id}"


def contact_emails(contact_id: str) -> str:
    """Set of the contact's e-mails (lower-case)."""
    return f"{PREFIX}:contact-emails:{contact_id}"


def contact_absorbed(contact_id: str) -> str:
    """Set of the contacts merged into this one."""
    return f"{PREFIX}:contact-absorbed:{contact_id}"


def contact_distinct(contact_id: str) -> str:
    """Set of contacts staff said are other people (split apart, or "Not the same"):
    dedup never merges these by itself."""
    return f"{PREFIX}:contact-distinct:{contact_id}"


def name_bucket(prefix: str) -> str:
    """Set of contacts with a name word starting with ``prefix`` (3 letters, folded):
    the candidates a fuzzy name match scores (``dedup.suggest_by_name``)."""
    return f"{PREFIX}:names:{prefix}"


def suggested(one: str, other: str) -> str:
    """Marker: a merge of these two was suggested to staff (TTL: not asked again soon)."""
    return f"{PREFIX}:suggested:{one}:{other}"


def phone(number: str) -> str:
    """E.164 phone → the contact that has it (the dedup index)."""
    return f"{PREFIX}:phone:{number}"


def email(address: str) -> str:
    """E-mail → the contact that has it (the dedup index)."""
    return f"{PREFIX}:email:{address}"


def topic(staff_chat: int, contact_id: str) -> str:
    """The contact's forum topic (``message_thread_id``) in a staff group."""
    return f"{PREFIX}:topic:{staff_chat}:{contact_id}"


def topic_contact(staff_chat: int, thread_id: int) -> str:
    """Reverse of :func:`topic`: whose topic a thread is."""
    return f"{PREFIX}:topic-contact:{staff_chat}:{thread_id}"


def card(staff_chat: int, contact_id: str) -> str:
    """The message id of the contact's task card in its topic (permanent)."""
    return f"{PREFIX}:card:{staff_chat}:{contact_id}"


def undelivered(staff_chat: str, staff_message: str) -> str:
    """An operator's reply a messenger refused for good (the job, its reason, the other
    accounts to try), kept a while for the failure notice's buttons."""
    return f"{PREFIX}:undelivered:{staff_chat}:{staff_message}"


def reminder(staff_chat: int, contact_id: str) -> str:
    """The message id of the reminder shown in the contact's topic, while one is
    (a new reminder replaces it; an answer removes it)."""
    return f"{PREFIX}:reminder:{staff_chat}:{contact_id}"


def webchat_log(account: str, visitor: str) -> str:
    """A website visitor's conversation (a stream: :mod:`gateway.webchat.log`)."""
    return f"{PREFIX}:webchat:log:{account}:{visitor}"


def webchat_cids(account: str, visitor: str) -> str:
    """The visitor's client message ids → their log entries (a resend is not stored twice)."""
    return f"{PREFIX}:webchat:cids:{account}:{visitor}"


def webchat_live(account: str, visitor: str) -> str:
    """The pub/sub channel announcing the visitor's log grew."""
    return f"{PREFIX}:webchat:live:{account}:{visitor}"


def webchat_file(account: str, file_id: str) -> str:
    return f"{PREFIX}:webchat:file:{account}:{file_id}"


def webchat_typing(account: str, visitor: str) -> str:
    """Set for a few seconds after "typing…" was shown for the visitor (throttle)."""
    return f"{PREFIX}:webchat:typing:{account}:{visitor}"


def webchat_profile(account: str, visitor: str) -> str:
    """What the visitor told in the chat's form (name, phone, e-mail)."""
    return f"{PREFIX}:webchat:profile:{account}:{visitor}"


def contact_line(contact_id: str) -> str:
    """The line (its name) the contact's conversation is in: its current task's, or the
    one an operator moved it to or started it in. Absent: the default line. Written
    only when several lines are configured (permanent)."""
    return f"{PREFIX}:line:{contact_id}"


def line_start(contact_id: str) -> str:
    """An operator started a conversation with the contact (``/new``) in this line: the
    customer's next task opens there, whatever account they answer through
    (TTL: LINE_START_TTL)."""
    return f"{PREFIX}:line-start:{contact_id}"


LINE_START_TTL = timedelta(days=30)


def watchers(contact_id: str) -> str:
    """Operators (user ids) told privately of each of the contact's messages (``/watch``)."""
    return f"{PREFIX}:watchers:{contact_id}"


def watching(user_id: str) -> str:
    """Reverse of :func:`watchers`: the contacts an operator watches."""
    return f"{PREFIX}:watching:{user_id}"


def denied(account: str, user_id: str) -> str:
    """The person stopped the account writing to them (VK ``message_deny``, Viber
    ``unsubscribed``), and when (ISO time); removed when they allow it again."""
    return f"{PREFIX}:denied:{account}:{user_id}"


SPAM = "spam"
"""The pseudo-contact whose topic in each line's group collects messages a spam rule
caught (``antispam.rules``)."""
FLOOD = "flood"
"""Timer kind: a flooding person's held-back minute is over (post what was held)."""


def flood(contact_id: str, minute: int) -> str:
    """How many messages the contact wrote in one minute (epoch minute; TTL 2 min)."""
    return f"{PREFIX}:flood:{contact_id}:{minute}"


def flood_held(contact_id: str) -> str:
    """Messages held back by flood protection, rendered, until the minute is over (a
    list; emptied when posted)."""
    return f"{PREFIX}:flood-held:{contact_id}"


# Message map ------------------------------------------------------------------------------
# Two-way (account, chat, message) ↔ (peer account, chat, message), for reply-to links
# and edits. TTL: MESSAGE_MAP_TTL (replies to very old messages fall back to no link).
MESSAGE_MAP_TTL = timedelta(days=180)


def message(account: str, chat_id: str, message_id: str) -> str:
    return f"{PREFIX}:msg:{account}:{chat_id}:{message_id}"


# Rate limits ------------------------------------------------------------------------------
# GCRA state per destination ("theoretical arrival time", ms); expires when idle.
def rate(bucket: str) -> str:
    return f"{PREFIX}:rate:{bucket}"


# Business processes ------------------------------------------------------------------------
# The contact's current process (JSON; permanent), older ones newest-first (a list,
# trimmed to PROCESS_ARCHIVE_LIMIT), and the per-day numbering counter (TTL 3 days: only
# today's is ever incremented).
PROCESS_ARCHIVE_LIMIT = 1000
PROCESS_SEQ_TTL = timedelta(days=3)


def process(contact_id: str) -> str:
    return f"{PREFIX}:process:{contact_id}"


def process_archive(contact_id: str) -> str:
    return f"{PREFIX}:processes:{contact_id}"


def process_seq(day: str) -> str:
    return f"{PREFIX}:seq:process:{day}"


def process_number(contact_id: str, day: str) -> str:
    """The number reserved for a contact's process of a day (TTL: PROCESS_SEQ_TTL)."""
    return f"{PREFIX}:process-number:{contact_id}:{day}"


# Timers ------------------------------------------------------------------------------------
# One sorted set: member "kind:contact", score = due time (ms). Permanent until handled;
# at most one timer of a kind per contact.
TIMERS = f"{PREFIX}:timers"
AUTO_CLOSE = "auto_close"
REMIND = "remind"
TAKE = "take"
"""A new or transferred task nobody took by ``sla.take_within_minutes`` escalates."""
IDLE = "idle"
"""Member ``idle:<operator id>``: set them offline after ``staff.idle_offline_minutes``."""
CSAT = "csat"
"""Member ``csat:<contact>``: the contact's satisfaction surveys that expire unanswered
(the earliest due one, or later: each is recorded at its own due time)."""


# Who is waiting for an answer: member contact, score = respond_by (ms). Maintained with
# the process state; the overdue digest reads it instead of scanning every contact.
AWAITING = f"{PREFIX}:awaiting"
OWNED = f"{PREFIX}:owned"
"""Contacts whose open task has a responsible operator, scored by the operator's id
(an operator's load is a ZCOUNT of their id)."""
PRESENCE = f"{PREFIX}:presence"
"""Operator id → ``online|offline:<iso time>`` (``/online``, ``/offline``)."""
ACTIVE = f"{PREFIX}:active"
"""Operator id → when they last did something in the staff group (epoch ms); kept only
with ``staff.idle_offline_minutes``."""


# Events ------------------------------------------------------------------------------------
# Every business-process change, for integrations (CRM webhooks read it with their own
# consumer group). Capped at about EVENTS_MAXLEN entries (approximate trimming).
EVENTS = f"{PREFIX}:events"
RELOAD = f"{PREFIX}:reload"
"""Pub/sub channel: ``gateway reload`` asks every replica to re-read its config."""
EVENTS_MAXLEN = 1_000_000


# History ----------------------------------------------------------------------------------
# Every message in and out, per contact, append-only (a stream). Trimmed by age:
# ``history.retention_days``. A merged contact's stream stays where it is and is read
# together with the survivor's.


def history(contact_id: str) -> str:
    return f"{PREFIX}:history:{contact_id}"


def word(token: str) -> str:
    """Set of contacts whose messages contained ``token`` (the /find index; stale
    entries are filtered against the history itself)."""
    return f"{PREFIX}:word:{token}"


def find_query(query_id: str) -> str:
    """A /find query, kept an hour for its [◀] [▶] buttons."""
    return f"{PREFIX}:find:{query_id}"


# Satisfaction survey (``channels[].csat``) ------------------------------------------------
# A survey asked when an operator closed a task: one per task (JSON; TTL: its wait plus
# CSAT_MARGIN, a backstop — answering or the ``csat`` timer deletes it); the latest one
# asked in a customer's chat (the same JSON; TTL: exactly the wait, so a rating-shaped
# message after it is an ordinary message without looking further); the contact's
# surveys still unanswered (a set the timer walks; emptied by it); and the inbound events
# taken as ratings (TTL: bus.dedup_ttl_days), so a redelivered rating counts once.
CSAT_MARGIN = timedelta(days=7)


def csat_survey(process: str, task: int) -> str:
    return f"{PREFIX}:csat:survey:{process}:{task}"


def csat_chat(account: str, chat_id: str) -> str:
    return f"{PREFIX}:csat:chat:{account}:{chat_id}"


def csat_pending(contact_id: str) -> str:
    return f"{PREFIX}:csat:pending:{contact_id}"


def csat_answer(event_key: str) -> str:
    return f"{PREFIX}:csat:answer:{event_key}"
