"""Handler ``random``: randomness from the OS CSPRNG (or a seeded generator for tests), recorded whole."""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from theater.errors import ManifestError
from theater.handlers._base import Handler, at_most
from theater.host import ActorHost

MAX_BYTES = 1 << 20


class RandomHandler(Handler):
    """``random-bytes``, ``random-range`` (min inclusive, max exclusive), ``random-float`` in [0, 1), ``generate-uuid``.

    Config: ``seed`` (an integer) makes the sequence reproducible, for tests only; without it the OS CSPRNG is used.
    The original Theater's keys are accepted: ``max_bytes`` (the most ``random-bytes`` gives in one call, at most
    1 MiB), ``max_int`` (the largest ``max`` of ``random-range``), ``allow_crypto_secure`` (accepted; it changes
    nothing: without ``seed`` every value comes from the OS CSPRNG).
    """

    type = "random"
    interface = "theater:simple/random"

    config_keys = {"seed": int, "max_bytes": int, "max_int": int, "allow_crypto_secure": bool}

    @classmethod
    def check_config(cls, source: str, config: dict[str, Any]) -> None:
        super().check_config(source, config)
        if not 0 <= config.get("max_bytes", 0) <= MAX_BYTES:
            raise ManifestError(source, "handlers.random.config.max_bytes",
                                f"expected 0 to {MAX_BYTES}, got {config['max_bytes']}")
        if config.get("max_int", 0) < 0:
            raise ManifestError(source, "handlers.random.config.max_int", f"expected >= 0, got {config['max_int']}")

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        super().__init__(actor, config)
        seed = config.get("seed")
        self._rng: random.Random = random.Random(seed) if seed is not None else secrets.SystemRandom()

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        # A seed grants nothing (it only makes the sequence reproducible); the maximums are compared.
        most = parent_config.get("max_bytes", MAX_BYTES)
        return (at_most("max_bytes", most, child_config.get("max_bytes", MAX_BYTES))
                or at_most("max_int", parent_config.get("max_int"), child_config.get("max_int")))

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "random-bytes": self.random_bytes,
            "random-range": self.random_range,
            "random-float": self.random_float,
            "generate-uuid": self.generate_uuid,
        }

    def random_bytes(self, length: int) -> dict[str, Any]:
        most = self.config.get("max_bytes", MAX_BYTES)
        if length > most:
            return {"err": f"asked for {length} bytes; at most {most} per call"}
        return {"ok": self._rng.randbytes(length)}

    def random_range(self, low: int, high: int) -> dict[str, Any]:
        if low >= high:
            return {"err": f"empty range: min {low} must be less than max {high}"}
        if "max_int" in self.config and high > self.config["max_int"]:
            return {"err": f"max {high} is larger than the configured max_int of {self.config['max_int']}"}
        return {"ok": self._rng.randrange(low, high)}

    def random_float(self) -> dict[str, Any]:
        return {"ok": self._rng.random()}

    def generate_uuid(self) -> dict[str, Any]:
        return {"ok": str(uuid.UUID(bytes=self._rng.randbytes(16), version=4))}
