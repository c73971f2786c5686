"""What every handler shares, and which handler type grants which import interface."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from theater.errors import ManifestError
from theater.host import ActorHost

HANDLER_FOR_INTERFACE = {
    "theater:simple/runtime": "runtime",
    "theater:simple/message-server-host": "message-server",
    "theater:simple/timing": "timing",
    "theater:simple/random": "random",
    "theater:simple/supervisor": "supervisor",
    "theater:simple/store": "store",
    "theater:simple/environment": "environment",
    "theater:simple/filesystem": "filesystem",
    "theater:simple/http-client": "http-client",
    "theater:simple/http-framework": "http-framework",
    "theater:simple/process": "process",
}


_TYPE_NAMES = {int: "an integer", str: "a string", bool: "a boolean", float: "a number", dict: "a table",
               list: "a list"}


def handler_for_import(interface: str) -> str | None:
    """The handler type that grants an import interface (any version suffix ignored), or None."""
    return HANDLER_FOR_INTERFACE.get(interface.split("@", 1)[0])


class Handler:
    """A host capability bound to one actor (see docs/handlers.md).

    Args:
        actor: the actor the functions serve, seen through ``theater.host.ActorHost`` (and, through it, the
            router and its children).
        config: the ``config`` table of the manifest's ``[[handlers]]`` entry, checked against ``config_keys``.

    Raises:
        ManifestError: a config key is unknown or of the wrong type.
    """

    type: str = ""
    interface: str = ""
    config_keys: dict[str, builtins.type] = {}  # builtins: ``type`` here is the class attribute above

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        self.actor = actor
        self.config = config
        for key, value in config.items():
            field = f"handlers.{self.type}.config.{key}"
            if key not in self.config_keys:
                allowed = ", ".join(sorted(self.config_keys)) or "none"
                raise ManifestError(actor.source, field, f"unknown key {key!r}; allowed keys: {allowed}")
            expected = self.config_keys[key]
            if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
                raise ManifestError(actor.source, field, f"expected {_TYPE_NAMES[expected]}, got {value!r}")

    def functions(self) -> dict[str, Callable[..., Any]]:
        """The host functions of ``interface``, by WIT function name."""
        raise NotImplementedError
