"""An actor's status: what the runtime reports for a live actor, and what a chain says of an actor not running.

The values are the text shown by ``theater list``, the API and ``ActorNotRunning``; a ``StrEnum`` compares equal to
that text and serializes as it.
"""

from __future__ import annotations

import enum


class ActorStatus(enum.StrEnum):
    """An actor's status."""

    STARTING = "starting"  # its first instance is being made, or ``init`` runs
    RUNNING = "running"
    RESTARTING = "restarting"  # its supervisor restarts it (possibly after a delay)
    STOPPED = "stopped"  # stopped, or it shut itself down
    FAILED = "failed"  # a call failed, it could not be brought up, or its supervisor gave up
    # Reported for a running actor whose commit failed, until its next call re-instantiates it.
    RECOVERING = "recovering"
    # Idle long enough, it dropped its instance (``actor/passivated``); its next operation brings it back.
    PASSIVATED = "passivated"
    # Read from a chain only: it ends in no stop, exit or failure (the runtime that ran it ended first).
    INTERRUPTED = "interrupted"


# The statuses in which an actor takes operations.
LIVE = frozenset({ActorStatus.STARTING, ActorStatus.RUNNING})
# The statuses an actor does not leave unless it is restarted.
ENDED = frozenset({ActorStatus.STOPPED, ActorStatus.FAILED})

__all__ = ["ENDED", "LIVE", "ActorStatus"]
