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


def string_list(source: str, handler: str, key: str, value: Any) -> list[str]:
    """A config value that must be a list of non-empty strings, returned as such.

    Raises:
        ManifestError: naming ``handlers.HANDLER.config.KEY`` and the first bad item.
    """
    field = f"handlers.{handler}.config.{key}"
    if not isinstance(value, list):
        raise ManifestError(source, field, f"expected a list of strings, got {value!r}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or "\0" in item:
            raise ManifestError(source, f"{field}[{index}]", f"expected a non-empty string, got {item!r}")
    return list(value)


def at_most(field: str, parent: int | None, child: int | None) -> str | None:
    """A limit's comparison: None when the child's (None: unlimited) is no larger than the parent's."""
    if parent is None or (child is not None and child <= parent):
        return None
    return f"{field} = {'unlimited' if child is None else child}, more than its parent's {parent}"


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
    # True for a handler that reaches the host's world (files, variables, programs): only the operator's own
    # manifests, and children within their parents' grants, may grant it (``theater.handlers.check_origin``).
    reaches_host: bool = False

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        self.actor = actor
        self.config = config
        self.check_config(actor.source, config)

    @classmethod
    def check_config(cls, source: str, config: dict[str, Any]) -> None:
        """Check a config table without an actor: every key known (``config_keys``) and of its type; handlers
        with finer rules extend it (ranges, list items) so a bad config is refused before anything starts.

        Raises:
            ManifestError: naming ``handlers.TYPE.config.KEY`` and what is wrong.
        """
        for key, value in config.items():
            field = f"handlers.{cls.type}.config.{key}"
            if key not in cls.config_keys:
                allowed = ", ".join(sorted(cls.config_keys)) or "none"
                raise ManifestError(source, field, f"unknown key {key!r}; allowed keys: {allowed}")
            expected = cls.config_keys[key]
            if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
                raise ManifestError(source, field, f"expected {_TYPE_NAMES[expected]}, got {value!r}")

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        """Whether a child's config of this handler grants no more than its parent's (both already checked by
        ``check_config``): None when it lies within, else a text naming the field and both values.

        The default is conservative: a child's config must equal its parent's. A handler whose config grants
        something (paths, variables, programs, ids, limits) overrides it with a field-by-field comparison.
        """
        if child_config == parent_config:
            return None
        return f"config {child_config!r} differs from its parent's {parent_config!r}"

    def close(self) -> None:
        """The actor's instance this handler served is gone (the actor stopped, failed, was restarted or the
        runtime is closing): release what it holds on the host. Default: nothing."""

    def functions(self) -> dict[str, Callable[..., Any]]:
        """The host functions of ``interface``, by WIT function name."""
        raise NotImplementedError

    def holds_live(self) -> bool:
        """True while this handler holds something live for its actor that dropping the instance would lose (a
        served socket, a child process, a pending timer): the actor is then never passivated. Read on the actor's
        thread between operations. Default: False (every call of the handler is over when it returns)."""
        return False
