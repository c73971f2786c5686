"""Handler ``runtime`` (always granted): logging, the actor's own state and chain, and shutdown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import cbor2

from theater.handlers._base import Handler

log = logging.getLogger("theater.actor")


class RuntimeHandler(Handler):
    """``log``, ``get-state``, ``get-chain`` and ``shutdown``."""

    type = "runtime"
    interface = "theater:simple/runtime"

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"log": self.log, "get-state": self.get_state, "get-chain": self.get_chain, "shutdown": self.shutdown}

    def log(self, msg: str) -> None:
        self.actor.logs.append(msg)
        log.info("[%s %s] %s", self.actor.name, str(self.actor.id)[:8], msg)

    def get_state(self) -> dict[str, Any] | None:
        state = self.actor.state
        return None if state is None else {"some": state}

    def get_chain(self) -> list[dict[str, Any]]:
        # The chain as committed so far: events of the running call are not durable yet and are left out.
        self.actor.flush()
        store = self.actor.store
        return [
            {
                "hash": e.hash,
                "parent-hash": None if e.parent is None else {"some": e.parent},
                "event-type": e.type,
                "data": cbor2.dumps(e.data, canonical=True),
                "timestamp": e.timestamp_ms,
            }
            for e in store.log.events(self.actor.id)
        ]

    def shutdown(self, data: dict[str, Any] | None) -> dict[str, Any]:
        self.actor.shutdown_data = (None if data is None else data["some"],)
        return {"ok": None}
