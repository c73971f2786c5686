"""Handler ``environment``: the host's environment variables an actor was granted, every answer recorded.

Which variables an actor sees is decided by its config alone, and nothing is granted by default (the original
Theater let an actor without ``allowed_vars`` or ``allowed_prefixes`` read every variable but the denied ones; here
a variable is reachable only when the config names it):

- ``allowed_vars``: variables reachable by exact name;
- ``allowed_prefixes``: variables reachable because their name starts with one of these;
- ``denied_vars``: never reachable, whatever the two above say (denied wins);
- ``allow_list_all``: ``list-vars`` answers with every reachable variable (without it, with an empty list).

A variable that is not reachable is answered exactly as an unset one (``none``, ``false``), so an actor cannot tell
a denied variable from a missing one. Replay hands back the recorded answers: it needs no variable set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from theater.handlers._base import Handler, string_list
from theater.host import ActorHost


class Grant:
    """What an environment config grants, in a form a child's can be compared with."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.names = frozenset(config.get("allowed_vars", ()))
        self.prefixes = tuple(config.get("allowed_prefixes", ()))
        self.denied = frozenset(config.get("denied_vars", ()))
        self.list_all = bool(config.get("allow_list_all", False))

    def allows(self, name: str) -> bool:
        """Whether the variable ``name`` is reachable (denied wins)."""
        if name in self.denied:
            return False
        return name in self.names or any(name.startswith(p) for p in self.prefixes)

    def within(self, parent: Grant) -> str | None:
        """None when every variable this grant reaches the parent's reaches too, else what is more."""
        if self.list_all and not parent.list_all:
            return "allow_list_all = true, but its parent's is false"
        for name in sorted(self.names):
            if name not in self.denied and not parent.allows(name):
                return f"allowed_vars names {name!r}, which its parent's grant does not reach"
        for prefix in self.prefixes:
            if not any(prefix.startswith(p) for p in parent.prefixes):
                return (f"allowed_prefixes has {prefix!r}, not inside any of its parent's allowed_prefixes "
                        f"{list(parent.prefixes)!r}")
            for name in sorted(parent.denied):
                if name.startswith(prefix) and name not in self.denied:
                    return (f"allowed_prefixes has {prefix!r}, which reaches {name!r}, denied to its parent "
                            "(add it to denied_vars)")
        return None


class EnvironmentHandler(Handler):
    """``get-var``, ``exists`` and ``list-vars`` over the variables the config grants (see the module)."""

    type = "environment"
    interface = "theater:simple/environment"
    config_keys = {"allowed_vars": list, "denied_vars": list, "allowed_prefixes": list, "allow_list_all": bool}
    reaches_host = True

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        super().__init__(actor, config)
        self.grant = Grant(config)

    @classmethod
    def check_config(cls, source: str, config: dict[str, Any]) -> None:
        super().check_config(source, config)
        for key in ("allowed_vars", "denied_vars", "allowed_prefixes"):
            if key in config:
                string_list(source, cls.type, key, config[key])

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        return Grant(child_config).within(Grant(parent_config))

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"get-var": self.get_var, "exists": self.exists, "list-vars": self.list_vars}

    def get_var(self, name: str) -> dict[str, str] | None:
        if not self.grant.allows(name):
            return None
        value = os.environ.get(name)
        return None if value is None else {"some": value}

    def exists(self, name: str) -> bool:
        return self.grant.allows(name) and name in os.environ

    def list_vars(self) -> list[list[str]]:
        if not self.grant.list_all:
            return []
        return [[name, value] for name, value in sorted(os.environ.items()) if self.grant.allows(name)]
