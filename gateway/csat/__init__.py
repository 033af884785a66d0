"""The customer-satisfaction survey (``channels[].csat``, off by default).

When an operator (or an API client) closes a task, the customer is asked to rate it
from 1 to 5 — never after the system's own closes (auto-close, a new day's carry-over,
a merge). Their next rating-shaped message or button press within ``wait_hours`` is the
answer, not a new request: it is stored on the task (wherever the task is by then),
shown in the topic, thanked, and written to the events stream as ``task.rated``.
Silence until then is recorded as ``{"rating": "none"}`` by the ``csat`` timer.

- :mod:`gateway.csat.answers`: the question per messenger, what counts as a rating;
- :mod:`gateway.csat.survey`: the stored survey and where its task lives now;
- :mod:`gateway.csat.worker`: asking (inside the close's commit), answers, silence.
"""

from gateway.csat.worker import Csat

__all__ = ["Csat"]
