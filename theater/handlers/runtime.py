"""Handler ``runtime`` (always granted): logging, the actor's own state and chain, and shutdown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from replay.derived import Derived, chain_result
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

    def get_chain(self) -> Derived | list[dict[str, Any]]:
        # The chain as committed so far, recorded by reference to its head (replay.derived): the chain holds it.
        self.actor.flush()
        store = self.actor.store
        return chain_result(store.log.events(self.actor.id), actor=self.actor.id)

    def shutdown(self, data: dict[str, Any] | None) -> dict[str, Any]:
        self.actor.shutdown_data = (None if data is None else data["some"],)
        return {"ok": None}
