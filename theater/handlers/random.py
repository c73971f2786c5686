"""Handler ``random``: randomness from the OS CSPRNG (or a seeded generator for tests), recorded whole."""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from theater.handlers._base import Handler
from theater.host import ActorHost

MAX_BYTES = 1 << 20


class RandomHandler(Handler):
    """``random-bytes``, ``random-range`` (min inclusive, max exclusive), ``random-float`` in [0, 1), ``generate-uuid``.

    Config: ``seed`` (an integer) makes the sequence reproducible, for tests only; without it the OS CSPRNG is used.
    """

    type = "random"
    interface = "theater:simple/random"

    config_keys = {"seed": int}

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        super().__init__(actor, config)
        seed = config.get("seed")
        self._rng: random.Random = random.Random(seed) if seed is not None else secrets.SystemRandom()

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        return None  # a seed grants nothing: it only makes the sequence reproducible

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "random-bytes": self.random_bytes,
            "random-range": self.random_range,
            "random-float": self.random_float,
            "generate-uuid": self.generate_uuid,
        }

    def random_bytes(self, length: int) -> dict[str, Any]:
        if length > MAX_BYTES:
            return {"err": f"asked for {length} bytes; at most {MAX_BYTES} per call"}
        return {"ok": self._rng.randbytes(length)}

    def random_range(self, low: int, high: int) -> dict[str, Any]:
        if low >= high:
            return {"err": f"empty range: min {low} must be less than max {high}"}
        return {"ok": self._rng.randrange(low, high)}

    def random_float(self) -> dict[str, Any]:
        return {"ok": self._rng.random()}

    def generate_uuid(self) -> dict[str, Any]:
        return {"ok": str(uuid.UUID(bytes=self._rng.randbytes(16), version=4))}
