"""The porcelain: one function per operation a user names, over the home's store and (when one runs) the
runtime. The CLI, the management API and the web explorer call these and only parse and render; ``forms`` holds
the one JSON form of each answer.

Modules: ``records`` (events, state at a point, verify), ``actors`` (ids by prefix, status, list, inspect, stop,
restart), ``blobs`` (blob references), ``resume`` (durable resume), ``forms`` (JSON forms).
May import ``store``, ``replay`` and ``theater``'s runtime modules; never the CLI or the server.
"""

from theater.porcelain.actors import (
    actor_rows,
    chain_status,
    describe,
    last_status,
    resolve_actor,
    restart,
    running,
    stop,
)
from theater.porcelain.blobs import BlobInfo, blob_info, resolve_blob
from theater.porcelain.records import (
    EventPage,
    StatePoint,
    VerifyReport,
    event_seq,
    recorded_head,
    select_events,
    state_point,
    type_matches,
    verify_actor,
)
from theater.porcelain.resume import Resumed, resume_actors

__all__ = [
    "BlobInfo",
    "EventPage",
    "Resumed",
    "StatePoint",
    "VerifyReport",
    "actor_rows",
    "blob_info",
    "chain_status",
    "describe",
    "event_seq",
    "last_status",
    "recorded_head",
    "resolve_actor",
    "resolve_blob",
    "restart",
    "resume_actors",
    "running",
    "select_events",
    "state_point",
    "stop",
    "type_matches",
    "verify_actor",
]
