"""Actor manifests: the TOML file that says what an actor is and what it may touch.

A complete manifest, with every key (only ``name`` and ``component`` are required)::

    name = "counter"                  # [A-Za-z0-9_.-]+
    version = "0.2.0"                 # default "0.1.0"
    description = "Counts messages"   # default ""
    component = "build/counter.wasm"  # a path relative to this file, a 64-hex-digit blake3 hash,
                                      # or "store:LABEL"; ``component_path`` is an alias
    durable = true                    # default true: a server restart resumes the actor
    init_state = { json = { count = 0 } }

    [[handlers]]
    type = "message-server"

    [[handlers]]
    type = "timing"
    config = { max_sleep_ms = 1000 }  # a table, validated by the handler itself

    [limits]
    fuel_per_call = 1_000_000_000     # every limit is an integer > 0
    memory_bytes = 268_435_456        # 256 MiB
    deadline_ms = 30_000
    max_message_bytes = 1_048_576     # 1 MiB; at most 2.5 MiB (what one call can hand out of a guest)

    [supervision]
    strategy = "one_for_one"          # one_for_one | one_for_all | rest_for_one
    intensity = 3                     # at most this many restarts (>= 0) ...
    period_s = 5                      # ... in this many seconds (> 0)
    restart = "permanent"             # default for children: permanent | transient | temporary
    backoff_initial_ms = 0            # 0: restart at once
    backoff_max_ms = 30_000
    restart_from = "init"             # init | last_state
    shutdown_timeout_ms = 5_000

    [supervision.children.worker]     # per-child options, for children whose manifest name is "worker"
    restart = "transient"
    restart_from = "last_state"

``init_state`` is the actor's initial state, kept as raw bytes. It is one of:

* a string: its UTF-8 bytes, verbatim (``init_state = '{"count": 0}'``);
* ``{ file = "state.bin" }``: the bytes of that file, relative to the manifest's directory;
* ``{ json = <any TOML value> }``: that value as compact JSON with sorted keys;
* ``{ base64 = "..." }``: the decoded bytes, for binary state inline.

The ``runtime`` handler is always granted; listing it is allowed but not needed. Unknown keys at any level are
errors, so a typo never silently drops a setting. Handler indexes in error messages count from 0.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from theater.errors import ManifestError

HANDLER_TYPES = frozenset(
    {"runtime", "message-server", "timing", "random", "supervisor", "store", "environment", "filesystem"}
    | {"http-client", "http-framework", "process"}
)
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES = ("permanent", "transient", "temporary")
RESTART_FROM = ("init", "last_state")

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_HASH = re.compile(r"[0-9a-fA-F]{64}")
_LABEL_PREFIX = "store:"
_TOP_KEYS = frozenset(
    {"name", "version", "description", "component", "component_path", "init_state", "durable"}
    | {"handlers", "limits", "supervision"}
)
_MISSING: Any = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentRef:
    """Where an actor's component comes from.

    Attributes:
        kind: ``path``, ``hash`` or ``label``.
        value: for ``path`` a Path, absolute when the manifest's directory was known, else as written; for
            ``hash`` the 32-byte blake3 digest; for ``label`` the store label (without ``store:``).
    """

    kind: Literal["path", "hash", "label"]
    value: Path | bytes | str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerSpec:
    """One granted host handler and its handler-specific configuration."""

    type: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Resource limits applied to every export call of the actor."""

    fuel_per_call: int = 1_000_000_000
    memory_bytes: int = 256 * 1024 * 1024
    deadline_ms: int = 30_000
    max_message_bytes: int = 1024 * 1024  # stored and answered whole in one call (see replay.engine)


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisionSpec:
    """How this actor supervises its children."""

    strategy: str = "one_for_one"
    intensity: int = 3
    period_s: float = 5.0
    restart: str = "permanent"
    backoff_initial_ms: int = 0
    backoff_max_ms: int = 30_000
    restart_from: str = "init"
    shutdown_timeout_ms: int = 5_000
    children: tuple[ChildOptions, ...] = ()

    def child_options(self, name: str) -> ChildOptions | None:
        """The per-child options declared for children named ``name``, if any."""
        return next((c for c in self.children if c.name == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildOptions:
    """Per-child options in a supervisor's manifest (``[supervision.children.NAME]``, NAME the child's name)."""

    name: str
    restart: str | None = None
    restart_from: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A parsed, validated actor manifest.

    Attributes:
        source: the file (or ``<inline>``) it came from, for error messages.
        source_text: the original TOML, to be stored verbatim.
    """

    name: str
    component: ComponentRef
    version: str = "0.1.0"
    description: str = ""
    init_state: bytes | None = None
    durable: bool = True
    handlers: tuple[HandlerSpec, ...] = ()
    limits: Limits = field(default_factory=Limits)
    supervision: SupervisionSpec = field(default_factory=SupervisionSpec)
    source: str = "<inline>"
    source_text: str = ""

    @property
    def granted(self) -> frozenset[str]:
        """The handler types this actor may use, ``runtime`` included."""
        return frozenset({"runtime", *(h.type for h in self.handlers)})


def load_manifest(path: Path) -> Manifest:
    """Read and parse the manifest file at ``path``; relative paths inside it resolve against its directory.

    Raises:
        ManifestError: the file cannot be read or is not UTF-8, or the manifest is malformed.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ManifestError(str(path), "", f"cannot read the manifest: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(str(path), "", f"the manifest is not valid UTF-8: {exc.reason}") from exc
    return parse_manifest(text, source=str(path), base_dir=path.absolute().parent)


def parse_manifest(
    text: str, *, source: str = "<inline>", base_dir: Path | None = None, read_files: bool = True
) -> Manifest:
    """Parse and validate manifest TOML.

    Args:
        text: the TOML text.
        source: what to call it in error messages.
        base_dir: the directory relative paths resolve against; without it a relative component path stays
            relative and a relative ``init_state`` file is an error.
        read_files: read an ``init_state = { file = ... }``; without it the field is checked but not read and
            ``init_state`` is None (for a manifest re-read from the record, whose state comes from the chain).

    Raises:
        ManifestError: the TOML is invalid or any field is missing, unknown or of the wrong type or value.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(source, "", f"invalid TOML: {exc}") from exc
    top = _Table(data, "", source)
    top.check_keys(_TOP_KEYS)
    return Manifest(
        name=_name(top),
        component=_component(top, base_dir),
        version=top.string("version", "0.1.0"),
        description=top.string("description", "", allow_empty=True),
        init_state=_init_state(top, base_dir) if read_files else _check_init_state(top),
        durable=top.boolean("durable", True),
        handlers=_handlers(top),
        limits=_limits(top.table("limits")),
        supervision=_supervision(top.table("supervision")),
        source=source,
        source_text=text,
    )


def check_permissions(child: Manifest, parent: Manifest) -> None:
    """Check that a child asks for no handler its parent was not granted.

    Raises:
        ManifestError: naming the child's source and the extra handler types.
    """
    extra = sorted(child.granted - parent.granted)
    if extra:
        problem = (
            f"{child.name!r} asks for handler types its parent {parent.name!r} was not granted: "
            f"{', '.join(extra)}; a child's permissions cannot exceed its parent's"
        )
        raise ManifestError(child.source, "handlers", problem)


class _Table:
    """A TOML table being validated, with its dotted prefix for error messages."""

    def __init__(self, data: dict[str, Any], prefix: str, source: str) -> None:
        self.data = data
        self.prefix = prefix
        self.source = source

    def error(self, key: str, problem: str) -> ManifestError:
        return ManifestError(self.source, f"{self.prefix}.{key}" if self.prefix else key, problem)

    def check_keys(self, allowed: Iterable[str]) -> None:
        allowed = sorted(allowed)
        for key in self.data:
            if key not in allowed:
                raise self.error(key, f"unknown key {key!r}; allowed keys: {', '.join(allowed)}")

    def get(self, key: str, default: Any, expected: str) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.error(key, f"required key is missing; expected {expected}")
        return default

    def string(self, key: str, default: Any = _MISSING, *, allow_empty: bool = False) -> str:
        expected = "a string" if allow_empty else "a non-empty string"
        value = self.get(key, default, expected)
        if not isinstance(value, str) or (not value and not allow_empty):
            raise self.error(key, f"expected {expected}, got {_show(value)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default, "true or false")
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_show(value)}")
        return value

    def integer(self, key: str, default: int, minimum: int) -> int:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        value = self.get(key, default, expected)
        if type(value) is not int or value < minimum:
            raise self.error(key, f"expected {expected}, got {_show(value)}")
        return value

    def positive_number(self, key: str, default: float) -> float:
        value = self.get(key, default, "a positive number")
        if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
            raise self.error(key, f"expected a positive number, got {_show(value)}")
        return float(value)

    def choice(self, key: str, options: Iterable[str], default: str) -> str:
        value = self.get(key, default, "")
        if not isinstance(value, str) or value not in options:
            listed = ", ".join(repr(o) for o in options)
            raise self.error(key, f"expected one of {listed}, got {_show(value)}")
        return value

    def table(self, key: str) -> _Table:
        value = self.get(key, {}, "a table")
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {_show(value)}")
        return _Table(value, f"{self.prefix}.{key}" if self.prefix else key, self.source)


def _show(value: Any) -> str:
    """Render a TOML value for an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "an empty string" if not value else repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a date/time ({value})"


def _name(top: _Table) -> str:
    name = top.string("name")
    if not _NAME.fullmatch(name):
        raise top.error("name", f"expected only letters, digits, '_', '.' or '-', got {name!r}")
    return name


def _component(top: _Table, base_dir: Path | None) -> ComponentRef:
    if "component" in top.data and "component_path" in top.data:
        raise top.error("component", "give either 'component' or its alias 'component_path', not both")
    key = "component_path" if "component_path" in top.data else "component"
    value = top.string(key)
    if _HASH.fullmatch(value):
        return ComponentRef(kind="hash", value=bytes.fromhex(value))
    if value.startswith(_LABEL_PREFIX):
        label = value.removeprefix(_LABEL_PREFIX)
        if not label or label != label.strip():
            raise top.error(key, f"expected a label after 'store:', got {value!r}")
        return ComponentRef(kind="label", value=label)
    path = Path(value)
    if base_dir is not None:
        path = (base_dir / path).resolve()
    return ComponentRef(kind="path", value=path)


def _check_init_state(top: _Table) -> None:
    """Check the shape of ``init_state`` without reading any file."""
    value = top.data.get("init_state")
    if value is not None and not isinstance(value, (str, dict)):
        raise top.error("init_state", f"expected a string or a table, got {_show(value)}")
    return None


def _init_state(top: _Table, base_dir: Path | None) -> bytes | None:
    value = top.data.get("init_state")
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if not isinstance(value, dict):
        expected = "a string or a table with one of 'file', 'json' or 'base64'"
        raise top.error("init_state", f"expected {expected}, got {_show(value)}")
    table = top.table("init_state")
    table.check_keys(("file", "json", "base64"))
    if len(value) != 1:
        found = ", ".join(repr(k) for k in value) or "an empty table"
        raise top.error("init_state", f"expected exactly one of 'file', 'json' or 'base64', got {found}")
    if "file" in value:
        return _read_state_file(table, base_dir)
    if "json" in value:
        return _encode_json(table)
    return _decode_base64(table)


def _read_state_file(table: _Table, base_dir: Path | None) -> bytes:
    path = Path(table.string("file"))
    if not path.is_absolute():
        if base_dir is None:
            problem = f"cannot resolve the relative path {str(path)!r} without the manifest's directory"
            raise table.error("file", problem)
        path = base_dir / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise table.error("file", f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc


def _encode_json(table: _Table) -> bytes:
    try:
        text = json.dumps(
            table.data["json"], sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise table.error("json", f"expected a value JSON can hold (no dates, nan or inf): {exc}") from exc
    return text.encode("utf-8")


def _decode_base64(table: _Table) -> bytes:
    text = table.string("base64", allow_empty=True)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise table.error("base64", f"expected base64 text, got {text!r}: {exc}") from exc


def _handlers(top: _Table) -> tuple[HandlerSpec, ...]:
    entries = top.get("handlers", [], "")
    if not isinstance(entries, list):
        raise top.error("handlers", f"expected an array of tables ([[handlers]]), got {_show(entries)}")
    specs: list[HandlerSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        spec = _handler(entry, f"handlers[{index}]", top.source)
        if spec.type in seen:
            problem = f"duplicate handler type {spec.type!r}, already given as handlers[{seen[spec.type]}]"
            raise ManifestError(top.source, f"handlers[{index}].type", problem)
        seen[spec.type] = index
        specs.append(spec)
    return tuple(specs)


def _handler(entry: Any, prefix: str, source: str) -> HandlerSpec:
    if not isinstance(entry, dict):
        raise ManifestError(source, prefix, f"expected a table, got {_show(entry)}")
    table = _Table(entry, prefix, source)
    table.check_keys(("type", "config"))
    kind = table.get("type", _MISSING, "a handler type")
    if not isinstance(kind, str) or kind not in HANDLER_TYPES:
        raise table.error("type", f"expected one of {', '.join(sorted(HANDLER_TYPES))}, got {_show(kind)}")
    return HandlerSpec(type=kind, config=table.table("config").data)


def _limits(table: _Table) -> Limits:
    names = [f.name for f in fields(Limits)]
    table.check_keys(names)
    defaults = Limits()
    return Limits(**{name: table.integer(name, getattr(defaults, name), 1) for name in names})


def _children(table: _Table) -> tuple[ChildOptions, ...]:
    """``[supervision.children.NAME]`` tables: restart type and source for the children named NAME."""
    out = []
    for name in sorted(table.data):
        child = table.table(name)
        child.check_keys(("restart", "restart_from"))
        out.append(ChildOptions(
            name=name,
            restart=child.choice("restart", RESTART_TYPES, None) if "restart" in child.data else None,
            restart_from=child.choice("restart_from", RESTART_FROM, None) if "restart_from" in child.data else None,
        ))
    return tuple(out)


def _supervision(table: _Table) -> SupervisionSpec:
    table.check_keys(f.name for f in fields(SupervisionSpec))
    spec = SupervisionSpec(
        children=_children(table.table("children")),
        strategy=table.choice("strategy", STRATEGIES, "one_for_one"),
        intensity=table.integer("intensity", 3, 0),
        period_s=table.positive_number("period_s", 5.0),
        restart=table.choice("restart", RESTART_TYPES, "permanent"),
        backoff_initial_ms=table.integer("backoff_initial_ms", 0, 0),
        backoff_max_ms=table.integer("backoff_max_ms", 30_000, 0),
        restart_from=table.choice("restart_from", RESTART_FROM, "init"),
        shutdown_timeout_ms=table.integer("shutdown_timeout_ms", 5_000, 0),
    )
    if spec.backoff_max_ms < spec.backoff_initial_ms:
        problem = f"expected at least backoff_initial_ms ({spec.backoff_initial_ms}), got {spec.backoff_max_ms}"
        raise table.error("backoff_max_ms", problem)
    return spec
