"""Helpers shared by the replay suites: recorded names, little-endian counters, state digests, workloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import blake3

NOW = "theater:simple/timing/now"
CLOCK_GRANTS = ("message-server", "timing")


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def digest(state: bytes) -> bytes:
    return blake3.blake3(state).digest()


def sends(count: int, message: bytes = b"tick") -> Callable[[Any, str], None]:
    """A workload that sends ``message`` to the actor ``count`` times."""

    def workload(theater: Any, actor: str) -> None:
        for _ in range(count):
            theater.send(actor, message)

    return workload
