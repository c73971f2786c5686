"""``--max NAME=VALUE``: the operator's maximums for manifests (``theater.manifest.Maximums``), one option."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

from theater.manifest import Maximums

NAMES = tuple(f.name for f in dataclasses.fields(Maximums))
_DEFAULTS = Maximums()


def max_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--max NAME=VALUE`` (repeatable) to a command; it receives ``maximums`` (a ``Maximums``)."""
    listed = ", ".join(f"{name} ({getattr(_DEFAULTS, name)})" for name in NAMES)
    return click.option(
        "--max", "maximums", multiple=True, metavar="NAME=VALUE", callback=_parse,
        help=f"Raise or lower a maximum that manifests are held to; repeatable. NAME (default): {listed}.",
    )(command)


def _parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Maximums:
    changes: dict[str, int] = {}
    for text in values:
        name, sep, value = text.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in NAMES:
            raise click.BadParameter(f"expected NAME=VALUE with NAME one of {', '.join(NAMES)}, got {text!r}",
                                     ctx=ctx, param=param)
        try:
            number = int(value.strip().replace("_", ""))
        except ValueError:
            number = 0
        if number < 1:
            raise click.BadParameter(f"{name} must be a positive integer, got {value!r}", ctx=ctx, param=param)
        changes[name] = number
    return dataclasses.replace(_DEFAULTS, **changes)


__all__ = ["NAMES", "max_option"]
