"""Handler ``timing``: wall-clock time and sleeping, recorded so replay sees the same clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from theater.errors import ManifestError, ResourceExhausted
from theater.handlers._base import Handler, at_most
from theater.scheduler import blocking

MAX_SLEEP_MS = 24 * 3600 * 1000


class TimingHandler(Handler):
    """``now`` (ms since the epoch), ``sleep(ms)`` and ``deadline(timestamp-ms)``; sleeping blocks only this actor,
    and a stop of the actor ends the sleep early (with ``err``).

    Config: ``max_sleep_ms`` (default one day) caps a single sleep or wait for a deadline; the original Theater's
    ``max_sleep_duration`` (milliseconds) is the same key under its old name (give one of the two), and its
    ``min_sleep_duration`` (milliseconds, default 0) refuses a shorter sleep.
    """

    type = "timing"
    interface = "theater:simple/timing"
    config_keys = {"max_sleep_ms": int, "max_sleep_duration": int, "min_sleep_duration": int}

    @classmethod
    def check_config(cls, source: str, config: dict[str, Any]) -> None:
        super().check_config(source, config)
        if "max_sleep_ms" in config and "max_sleep_duration" in config:
            raise ManifestError(source, "handlers.timing.config.max_sleep_duration",
                                "the original's name of max_sleep_ms: give one of the two, not both")
        for key in cls.config_keys:
            if config.get(key, 0) < 0:
                raise ManifestError(source, f"handlers.timing.config.{key}", f"expected >= 0, got {config[key]}")

    @staticmethod
    def _max(config: dict[str, Any]) -> int:
        return int(config.get("max_sleep_ms", config.get("max_sleep_duration", MAX_SLEEP_MS)))

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        return at_most("max_sleep_ms", cls._max(parent_config), cls._max(child_config))

    @property
    def max_sleep_ms(self) -> int:
        return self._max(self.config)

    @property
    def min_sleep_ms(self) -> int:
        return int(self.config.get("min_sleep_duration", 0))

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"now": self.now, "sleep": self.sleep, "deadline": self.deadline}

    def now(self) -> int:
        return time.time_ns() // 1_000_000

    def sleep(self, duration: int) -> dict[str, Any]:
        if duration > self.max_sleep_ms:
            return {"err": f"sleep of {duration} ms is longer than the maximum of {self.max_sleep_ms} ms"}
        if duration < self.min_sleep_ms:
            return {"err": f"sleep of {duration} ms is shorter than the minimum of {self.min_sleep_ms} ms"}
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
