"""Export and import: the gateway's data as JSON Lines, for migration and audit.

``gateway export`` writes contacts (identities, phones, e-mails, names, merges),
business processes with their tasks, and the message history — plus what a restored
gateway needs to carry on (topics, timers, counters, the message map). ``gateway
import`` restores such a file into an empty Redis and rebuilds the indexes. Redis's own
persistence (AOF/RDB) stays the primary backup; see the README.

- :mod:`gateway.export.records` — the format (one pydantic model per line type);
- :mod:`gateway.export.families` — what becomes of every family of keys;
- :mod:`gateway.export.dump` — the export (streamed, batched);
- :mod:`gateway.export.load` — validation, then the all-or-nothing import;
- :mod:`gateway.export.writes` — the commands that restore each line;
- :mod:`gateway.export.command` — the two sub-commands.
"""

from gateway.export.command import export_command, import_command, open_redis
from gateway.export.dump import Exporter, Summary
from gateway.export.load import ImportRefused, Plan, ensure_empty, validate, write
from gateway.export.records import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "Exporter",
    "ImportRefused",
    "Plan",
    "Summary",
    "ensure_empty",
    "export_command",
    "import_command",
    "open_redis",
    "validate",
    "write",
]
