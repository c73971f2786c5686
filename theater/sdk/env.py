"""The ``environment`` interface (handler ``environment``): the host's environment variables this actor was granted.

A variable the manifest does not grant reads exactly as an unset one. Every answer is recorded in the chain, so a
replay sees the same values with none of them set.
"""

from ._host import call


def get(name: str) -> str | None:
    """The value of ``name``, or None when it is unset or not granted."""
    return call("environment", "get_var", name)


def exists(name: str) -> bool:
    """Whether ``name`` is set and granted."""
    return bool(call("environment", "exists", name))


def all() -> dict[str, str]:
    """Every granted variable (empty unless the manifest sets ``allow_list_all``)."""
    return dict(call("environment", "list_vars"))
