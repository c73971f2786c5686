"""Durable actors, as the server sees them: resumed when it starts (``theater.porcelain.resume``), their status
read from their chains when it does not run them (``theater.porcelain.actors.last_status``).
"""

from __future__ import annotations

from theater.porcelain.actors import TERMINAL_EVENTS, last_status
from theater.porcelain.resume import Resumed, interrupted_actors, is_durable, resume_actors

__all__ = ["TERMINAL_EVENTS", "Resumed", "interrupted_actors", "is_durable", "last_status", "resume_actors"]
