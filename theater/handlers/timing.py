"""Handler ``timing``: wall-clock time and sleeping, recorded so replay sees the same clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from theater.errors import ResourceExhausted
from theater.handlers._base import Handler
from theater.scheduler import blocking

MAX_SLEEP_MS = 24 * 3600 * 1000


class TimingHandler(Handler):
    """``now`` (ms since the epoch), ``sleep(ms)`` and ``deadline(timestamp-ms)``; sleeping blocks only this actor,
    and a stop of the actor ends the sleep early (with ``err``).

    Config: ``max_sleep_ms`` (default one day) caps a single sleep or wait for a deadline.
    """

    type = "timing"
    interface = "theater:simple/timing"
    config_keys = {"max_sleep_ms": int}

    @property
    def max_sleep_ms(self) -> int:
        return self.config.get("max_sleep_ms", MAX_SLEEP_MS)

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"now": self.now, "sleep": self.sleep, "deadline": self.deadline}

    def now(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, duration: int) -> dict[str, Any]:
        if duration > self.max_sleep_ms:
            return {"err": f"sleep of {duration} ms is longer than the maximum of {self.max_sleep_ms} ms"}
        return self._sleep(duration)

    def deadline(self, timestamp: int) -> dict[str, Any]:
        wait_ms = timestamp - self.now()
        if wait_ms > self.max_sleep_ms:
            return {"err": f"deadline {timestamp} is more than {self.max_sleep_ms} ms away"}
        return self._sleep(wait_ms) if wait_ms > 0 else {"ok": None}

    def _sleep(self, ms: int) -> dict[str, Any]:
        try:
            with blocking():  # the sleeping actor keeps its worker; the scheduler keeps the others running
                stopping = self.actor.stop_requested.wait(ms / 1000)
        except ResourceExhausted as exc:
            return {"err": str(exc)}
        if stopping:
            return {"err": "the sleep was cut short: the actor is stopping"}
        return {"ok": None}
