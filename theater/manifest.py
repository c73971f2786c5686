"""Actor manifests: the TOML file that says what an actor is and what it may touch.

A complete manifest, with every key (only ``name`` and ``component`` are required)::

    name = "counter"                  # [A-Za-z0-9_.-]+
    version = "0.2.0"                 # default "0.1.0"
    description = "Counts messages"   # default ""
    component = "build/counter.wasm"  # a path relative to this file, a 64-hex-digit blake3 hash,
                                      # or "store:LABEL"; ``component_path`` is an alias
                                      # (paths: see "Files" below)
    durable = true                    # default true: a server restart resumes the actor
    passivate_after_ms = 500          # passivate it sooner than the runtime's passivate_after (never later)
    on_err = "answer"                 # default: an export's err is its answer (state unchanged, the actor goes
                                      # on); "fail": an err fails the actor, as a trap does
    init_state = { json = { count = 0 } }

    [[handlers]]
    type = "message-server"

    [[handlers]]
    type = "timing"
    config = { max_sleep_ms = 1000 }  # a table, validated by the handler itself

    [limits]                          # each at most the runtime's maximum (``Maximums``)
    fuel_per_call = 1_000_000_000     # every limit is an integer > 0
    memory_bytes = 268_435_456        # 256 MiB
    deadline_ms = 30_000
    max_message_bytes = 1_048_576     # 1 MiB; at most 2.5 MiB (what one call can hand out of a guest)

    [supervision]
    strategy = "one_for_one"          # one_for_one | one_for_all | rest_for_one
    intensity = 3                     # at most this many restarts (>= 0) ...
    period_s = 5                      # ... in this many seconds (> 0)
    restart = "permanent"             # default for children: permanent | transient | temporary
    backoff_initial_ms = 0            # 0: restart at once; durations at most one day
    backoff_max_ms = 30_000
    restart_from = "init"             # init | last_state
    shutdown_timeout_ms = 5_000

    [supervision.children.worker]     # per-child options, for children whose manifest name is "worker"
    restart = "transient"
    restart_from = "last_state"

``init_state`` is the actor's initial state, kept as raw bytes. It is one of:

* a string: as in the original Theater, the name of a file relative to the manifest's directory
  (``init_state = "state.json"``), read as ``{ file = ... }`` is; literal state takes one of the table forms;
* ``{ file = "state.bin" }``: the bytes of that file, relative to the manifest's directory;
* ``{ json = <any TOML value> }``: that value as compact JSON with sorted keys;
* ``{ base64 = "..." }``: the decoded bytes, for binary state inline.

The original Theater's ``save_chain = true`` is accepted (every chain is kept); ``save_chain = false`` and
``permission_policy`` are refused with an error saying why (docs/original.md lists every difference).

The ``runtime`` handler is always granted; listing it is allowed but not needed. Unknown keys at any level are
errors, so a typo never silently drops a setting. Handler indexes in error messages count from 0.

Files. Which files a manifest may name depends on who wrote it, and is decided by the ``FileAccess`` it is parsed
with (``theater.files``): the operator's manifests may name any regular file; a manifest a guest hands to its
supervisor only files inside the directory of the operator's manifest its tree started from, by relative paths
without ``..`` (symlinks must not lead out); in a tree started on a server by ``theater start``, only the files
it uploaded with it, read from the blob store; a manifest from an API client, or from a guest whose tree did not
start from a file or an upload, none at all (its component comes as a blob hash or ``store:LABEL``, its state
inline). Every file is read only if it is a regular file (or blob) no larger than the runtime's maximum
(``Maximums``).

Limits. A child's ``[limits]`` lie within its parent's, and every manifest's within the runtime's ``Maximums``
(``check_limits``, ``check_permissions``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from replay.schema import ON_ERR_CHOICES, OnErr
from replay.schema import Limits as CallLimits
from theater.errors import ManifestError
from theater.files import FileAccess

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
    {"name", "version", "description", "component", "component_path", "init_state", "durable", "passivate_after_ms"}
    | {"on_err", "handlers", "limits", "supervision", "save_chain", "permission_policy"}
)
_MISSING: Any = object()
_MAX_DURATION_MS = 86_400_000  # one day: no supervision delay may be longer (Python's timers overflow far beyond)
_UNTRUSTED = FileAccess.none("a caller that gave no file access")


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentRef:
    """Where an actor's component comes from.

    Attributes:
        kind: ``path``, ``hash`` or ``label``.
        value: for ``path`` a Path: for the operator's manifests absolute when the manifest's directory was
            known, else as written; for any other manifest as written, to be resolved by its ``files`` access
            when read; for ``hash`` the 32-byte blake3 digest; for ``label`` the store label (without ``store:``).
            ``path``, ``digest`` and ``label`` give it typed, for the kind it is.
    """

    kind: Literal["path", "hash", "label"]
    value: Path | bytes | str

    def __post_init__(self) -> None:
        if not isinstance(self.value, _COMPONENT_VALUE_TYPES[self.kind]):
            raise TypeError(f"a {self.kind} component reference holds a {type(self.value).__name__}")

    @property
    def path(self) -> Path:
        """The component file of a ``path`` reference."""
        if not isinstance(self.value, Path):
            raise TypeError(f"a {self.kind} component reference has no path")
        return self.value

    @property
    def digest(self) -> bytes:
        """The blob hash of a ``hash`` reference."""
        if not isinstance(self.value, bytes):
            raise TypeError(f"a {self.kind} component reference has no digest")
        return self.value

    @property
    def label(self) -> str:
        """The store label of a ``label`` reference."""
        if not isinstance(self.value, str):
            raise TypeError(f"a {self.kind} component reference has no label")
        return self.value


_COMPONENT_VALUE_TYPES: dict[str, type] = {"path": Path, "hash": bytes, "label": str}


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerSpec:
    """One granted host handler and its handler-specific configuration."""

    type: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits(CallLimits):
    """A manifest's ``[limits]``: the per-call limits of every export call (``replay.schema.Limits``, recorded at
    creation; ``per_call()`` gives just those) and the largest message the actor takes."""

    max_message_bytes: int = 1024 * 1024  # stored and answered whole in one call (see replay.engine)


@dataclass(frozen=True, slots=True, kw_only=True)
class Maximums:
    """The most any manifest may ask for, and the most of a file it names that is read; set by the operator.

    Passed to ``Theater(maximums=...)``; ``theater run`` and ``theater server`` take ``--max NAME=VALUE``. The
    first four bound the fields of the same name in ``[limits]`` (a manifest asking for more is refused, naming
    the field); the ``*_file_bytes`` bound the files a manifest names (a larger file is refused, never read whole).

    Attributes:
        fuel_per_call: default 10**12 (minutes of compute; the manifest default is 10**9).
        memory_bytes: default 4 GiB (a 32-bit wasm memory's whole range).
        deadline_ms: default 600_000 (ten minutes).
        max_message_bytes: default 64 MiB (the server's request body limit).
        component_file_bytes: default 256 MiB.
        state_file_bytes: default 16 MiB.
        manifest_file_bytes: default 1 MiB.
    """

    fuel_per_call: int = 10**12
    memory_bytes: int = 4 * 1024**3
    deadline_ms: int = 600_000
    max_message_bytes: int = 64 * 1024**2
    component_file_bytes: int = 256 * 1024**2
    state_file_bytes: int = 16 * 1024**2
    manifest_file_bytes: int = 1024**2

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Maximums.{item.name} must be a positive integer, got {value!r}")


DEFAULT_MAXIMUMS = Maximums()


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
        files: which files it may make the host read (its component's, and its children's manifests'); not part
            of the manifest's value (equality ignores it).
    """

    name: str
    component: ComponentRef
    version: str = "0.1.0"
    description: str = ""
    init_state: bytes | None = None
    durable: bool = True
    passivate_after_ms: int | None = None
    on_err: OnErr = OnErr.ANSWER
    handlers: tuple[HandlerSpec, ...] = ()
    limits: Limits = field(default_factory=Limits)
    supervision: SupervisionSpec = field(default_factory=SupervisionSpec)
    source: str = "<inline>"
    source_text: str = ""
    files: FileAccess = field(default=_UNTRUSTED, compare=False, repr=False)

    @property
    def granted(self) -> frozenset[str]:
        """The handler types this actor may use, ``runtime`` included."""
        return frozenset({"runtime", *(h.type for h in self.handlers)})


def load_manifest(
    path: Path | str, *, files: FileAccess | None = None, maximums: Maximums = DEFAULT_MAXIMUMS,
    cache: ManifestCache | None = None,
) -> Manifest:
    """Read and parse the manifest file at ``path``; relative paths inside it resolve against its directory.

    Args:
        path: the manifest file.
        files: the access the file is named under; None is the operator's (any regular file, ``path`` relative
            to the current directory). Under a confined access ``path`` must lie inside its root.
        maximums: the most of a file that is read (``manifest_file_bytes``, ``state_file_bytes``).
        cache: manifests parsed before (the file is read every time; its text is parsed once).

    Raises:
        ManifestError: the file may not be read, cannot be read, is not a regular file, is too large or is not
            UTF-8, or the manifest is malformed.
    """
    access = FileAccess.trusted() if files is None else files
    source = str(path)
    data, beside = access.read_beside(path, limit=maximums.manifest_file_bytes, what="manifest", source=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(source, "", f"the manifest is not valid UTF-8: {exc.reason}") from None
    if cache is not None:
        return cache.parse(text, source=source, files=beside, maximums=maximums)
    return parse_manifest(text, source=source, files=beside, maximums=maximums)


def parse_manifest(
    text: str, *, source: str = "<inline>", files: FileAccess | None = None, maximums: Maximums = DEFAULT_MAXIMUMS
) -> Manifest:
    """Parse and validate manifest TOML.

    Args:
        text: the TOML text.
        source: what to call it in error messages.
        files: which files the manifest may name (see ``theater.files``). None gives no file access: a component
            path is kept as written (and refused if the runtime needs to read it) and an ``init_state`` file is
            refused. ``FileAccess.recorded()`` is for a manifest re-read from the record: names are checked in
            shape, nothing is read and ``init_state`` is None (the state comes from the chain).
        maximums: ``state_file_bytes`` bounds an ``init_state`` file.

    Raises:
        ManifestError: the TOML is invalid or nested too deeply, any field is missing, unknown or of the wrong type
            or value, or a file it names may not or cannot be read.
    """
    return _parse(text, source, _UNTRUSTED if files is None else files, maximums)[0]


def _parse(text: str, source: str, access: FileAccess, maximums: Maximums) -> tuple[Manifest, _Table]:
    _check_unicode(text, source)
    top = _Table(parse_toml(text, source), "", source)
    top.check_keys(_TOP_KEYS)
    _check_original_keys(top)
    return Manifest(
        name=_name(top),
        component=_component(top, access),
        version=top.string("version", "0.1.0"),
        description=top.string("description", "", allow_empty=True),
        init_state=_file_fields(top, access, maximums),
        durable=top.boolean("durable", True),
        passivate_after_ms=(top.integer("passivate_after_ms", 0, 0, _MAX_DURATION_MS)
                            if "passivate_after_ms" in top.data else None),
        on_err=_on_err(top),
        handlers=_handlers(top),
        limits=_limits(top.table("limits")),
        supervision=_supervision(top.table("supervision")),
        source=source,
        source_text=text,
        files=access,
    ), top


def _file_fields(top: _Table, access: FileAccess, maximums: Maximums) -> bytes | None:
    return _check_init_state(top) if access.mode == "recorded" else _init_state(top, access, maximums)


class ManifestCache:
    """Manifests parsed before, by text and source, so that starting many actors from one manifest parses and
    validates its TOML once (``parse``). Thread-safe.

    Only what depends on nothing but the text is kept: what depends on the files the manifest may name (its
    component's path, checked against the access given now; an ``init_state`` file, read again) is found again
    on every ``parse``, exactly as ``parse_manifest`` does; when all of it is as the first time, the manifest
    parsed then is returned itself (a ``Manifest`` is never changed). Text that fails to parse is not kept (each
    ``parse`` of it raises the same error). At most ``capacity`` texts of at most ``max_bytes`` in all are kept, the
    oldest dropped; a text larger than a tenth of ``max_bytes`` is not kept.
    """

    def __init__(self, *, capacity: int = 256, max_bytes: int = 4 * 1024 * 1024) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._kept: dict[tuple[str, str], tuple[Manifest, _Table]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def parse(self, text: str, *, source: str = "<inline>", files: FileAccess | None = None,
              maximums: Maximums = DEFAULT_MAXIMUMS) -> Manifest:
        """``parse_manifest(text, source=source, files=files, maximums=maximums)``, parsing the TOML once.

        Raises:
            ManifestError: as ``parse_manifest``.
        """
        access = _UNTRUSTED if files is None else files
        key = (text, source)
        found = self._kept.get(key)
        if found is None:
            manifest, top = _parse(text, source, access, maximums)
            self._keep(key, (manifest, top))
            return manifest
        template, top = found
        component, init_state = _component(top, access), _file_fields(top, access, maximums)
        if component == template.component and init_state == template.init_state and access == template.files:
            return template  # the same object: what a runtime derives from it once is found again
        return dataclasses.replace(template, component=component, init_state=init_state, files=access)

    def _keep(self, key: tuple[str, str], entry: tuple[Manifest, _Table]) -> None:
        size = len(key[0]) + len(key[1])
        if size * 10 > self.max_bytes:
            return
        with self._lock:
            if key in self._kept:
                return
            self._kept[key] = entry
            self._bytes += size
            while len(self._kept) > self.capacity or self._bytes > self.max_bytes:
                old = next(iter(self._kept))
                del self._kept[old]
                self._bytes -= len(old[0]) + len(old[1])


def _on_err(top: _Table) -> OnErr:
    """``on_err``: what an export's ``err`` does to the actor (default ``answer``)."""
    value = top.string("on_err", OnErr.ANSWER.value)
    if value not in ON_ERR_CHOICES:
        raise top.error("on_err", f'expected "answer" (an err is the call\'s answer: its state change is discarded '
                                  f'and the actor goes on) or "fail" (an err fails the actor), got {value!r}')
    return OnErr(value)


def _check_original_keys(top: _Table) -> None:
    """The original Theater's top-level keys this runtime takes only where they mean what they meant there.

    ``save_chain = true`` is accepted (every chain is kept); ``save_chain = false`` and ``permission_policy`` are
    refused, saying why.
    """
    if "save_chain" in top.data:
        if not top.boolean("save_chain", True):
            raise top.error("save_chain", "every actor's chain is recorded (replay and verify need it); "
                                          "save_chain = false cannot be honoured: remove the key")
    if "permission_policy" in top.data:
        raise top.error("permission_policy", "not supported: a child's grants are its own [[handlers]] entries, "
                                             "refused when they exceed its parent's (docs/original.md)")


MAX_TOML_DEPTH = 100  # arrays and inline tables inside each other: deeper is refused before the parser runs
# What can hold a bracket that is not one: strings (multi-line first, escapes skipped) and comments.
_TOML_TOKEN = re.compile(r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]',
                         re.DOTALL)


def _too_deep(text: str) -> bool:
    """True when arrays or inline tables nest deeper than ``MAX_TOML_DEPTH`` (brackets in strings and comments
    do not count). Python's TOML parser recurses once per level: a hostile manifest nesting 100,000 levels would
    otherwise run it into the recursion limit, where anything else that runs at that depth (a finalizer the
    garbage collector calls) fails too."""
    if text.count("[") + text.count("{") <= MAX_TOML_DEPTH:
        return False
    depth = 0
    for match in _TOML_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_TOML_DEPTH:
                return True
        elif token in ("]", "}"):
            depth = max(depth - 1, 0)
    return False


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text as a table.

    Raises:
        ManifestError: the text is not TOML, or nests arrays or tables too deeply (``MAX_TOML_DEPTH``).
    """
    if _too_deep(text):
        raise ManifestError(source, "", "invalid TOML: arrays or tables are nested too deeply")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(source, "", f"invalid TOML: {exc}") from None
    except RecursionError:
        raise ManifestError(source, "", "invalid TOML: arrays or tables are nested too deeply") from None


def _check_unicode(text: str, source: str) -> None:
    """A manifest is stored as UTF-8: refuse text that cannot be (lone surrogates from a JSON body)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ManifestError(source, "", f"the text is not valid Unicode at character {exc.start}") from None


def check_limits(manifest: Manifest, maximums: Maximums) -> None:
    """Check that every ``[limits]`` value of a manifest is within the runtime's maximums.

    Raises:
        ManifestError: naming the first field over its maximum, its value and the maximum.
    """
    for item in fields(Limits):
        value, most = getattr(manifest.limits, item.name), getattr(maximums, item.name)
        if value > most:
            problem = f"{value} is more than this runtime's maximum of {most} (an operator setting)"
            raise ManifestError(manifest.source, f"limits.{item.name}", problem)


def check_permissions(child: Manifest, parent: Manifest) -> None:
    """Check that a child asks for no handler its parent was not granted and no limit above its parent's.

    Raises:
        ManifestError: naming the child's source and the extra handler types, or the first limit over its
            parent's with both values.
    """
    extra = sorted(child.granted - parent.granted)
    if extra:
        problem = (
            f"{child.name!r} asks for handler types its parent {parent.name!r} was not granted: "
            f"{', '.join(extra)}; a child's permissions cannot exceed its parent's"
        )
        raise ManifestError(child.source, "handlers", problem)
    for item in fields(Limits):
        value, most = getattr(child.limits, item.name), getattr(parent.limits, item.name)
        if value > most:
            problem = (f"{child.name!r} asks for {value}, more than its parent {parent.name!r} has ({most}); "
                       "a child's limits cannot exceed its parent's")
            raise ManifestError(child.source, f"limits.{item.name}", problem)


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

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if maximum is not None:
            expected = f"an integer from {minimum} to {maximum}"
        value = self.get(key, default, expected)
        if type(value) is not int or value < minimum or (maximum is not None and value > maximum):
            raise self.error(key, f"expected {expected}, got {_show(value)}")
        return value

    def positive_number(self, key: str, default: float, maximum: float) -> float:
        expected = f"a positive number up to {maximum:g}"
        value = self.get(key, default, expected)
        if type(value) not in (int, float) or not math.isfinite(value) or value <= 0 or value > maximum:
            raise self.error(key, f"expected {expected}, got {_show(value)}")
        return float(value)

    def choice(self, key: str, options: Iterable[str], default: str | None) -> str:
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


def _component(top: _Table, files: FileAccess) -> ComponentRef:
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
    return ComponentRef(kind="path", value=files.component_path(value, source=top.source, field=key))


def _check_init_state(top: _Table) -> bytes | None:
    """Check the shape of ``init_state`` without reading any file; the state is None (the record holds it)."""
    value = top.data.get("init_state")
    if value is not None and not isinstance(value, (str, dict)):
        raise top.error("init_state", f"expected a string or a table, got {_show(value)}")
    return None


def _init_state(top: _Table, files: FileAccess, maximums: Maximums) -> bytes | None:
    value = top.data.get("init_state")
    if value is None:
        return None
    if isinstance(value, str):  # the original Theater's form: a file next to the manifest
        if value.startswith(_LABEL_PREFIX):
            raise top.error("init_state", f"{value!r}: a state from a store label is not supported; give the file "
                                          "next to the manifest, or { json = ... } / { base64 = ... } inline")
        hint = "init_state names a file, as in the original Theater (literal state: { json = ... } or { base64 = ... })"
        try:
            return files.read(value, limit=maximums.state_file_bytes, what="state", source=top.source,
                              field="init_state")
        except ManifestError as exc:
            raise ManifestError(exc.source, exc.field, f"{exc.problem}; {hint}") from None
    if not isinstance(value, dict):
        expected = "a string or a table with one of 'file', 'json' or 'base64'"
        raise top.error("init_state", f"expected {expected}, got {_show(value)}")
    table = top.table("init_state")
    table.check_keys(("file", "json", "base64"))
    if len(value) != 1:
        found = ", ".join(repr(k) for k in value) or "an empty table"
        raise top.error("init_state", f"expected exactly one of 'file', 'json' or 'base64', got {found}")
    if "file" in value:
        name = table.string("file")
        return files.read(name, limit=maximums.state_file_bytes, what="state", source=top.source,
                          field="init_state.file")
    if "json" in value:
        return _encode_json(table)
    return _decode_base64(table)


def merge_state(manifest_state: bytes | None, caller_state: bytes | None) -> bytes | None:
    """The state an actor starts with when its manifest and its caller both give one: as in the original Theater,
    two JSON objects are merged (the caller's keys win), compact with sorted keys; otherwise the caller's state
    replaces the manifest's."""
    if caller_state is None or manifest_state is None:
        return manifest_state if caller_state is None else caller_state
    try:
        ours, theirs = json.loads(manifest_state), json.loads(caller_state)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return caller_state
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return caller_state
    return json.dumps({**ours, **theirs}, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def start_state(manifest: Manifest, caller_state: bytes | None, call_init: bool) -> bytes | None:
    """The state an actor starts from: for a start (``call_init``) the manifest's merged with the caller's
    (``merge_state``); for a resume, the caller's snapshot as it is (the manifest's when there is none)."""
    if not call_init:
        return manifest.init_state if caller_state is None else caller_state
    return merge_state(manifest.init_state, caller_state)


def _encode_json(table: _Table) -> bytes:
    try:
        text = json.dumps(
            table.data["json"], sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise table.error("json", f"expected a value JSON can hold (no dates, nan or inf): {exc}") from exc
    except RecursionError:
        raise table.error("json", "the value is nested too deeply") from None
    return text.encode("utf-8")


def _decode_base64(table: _Table) -> bytes:
    text = table.string("base64", allow_empty=True)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise table.error("base64", f"expected base64 text: {exc}") from None


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
        period_s=table.positive_number("period_s", 5.0, _MAX_DURATION_MS / 1000),
        restart=table.choice("restart", RESTART_TYPES, "permanent"),
        backoff_initial_ms=table.integer("backoff_initial_ms", 0, 0, _MAX_DURATION_MS),
        backoff_max_ms=table.integer("backoff_max_ms", 30_000, 0, _MAX_DURATION_MS),
        restart_from=table.choice("restart_from", RESTART_FROM, "init"),
        shutdown_timeout_ms=table.integer("shutdown_timeout_ms", 5_000, 0, _MAX_DURATION_MS),
    )
    if spec.backoff_max_ms < spec.backoff_initial_ms:
        problem = f"expected at least backoff_initial_ms ({spec.backoff_initial_ms}), got {spec.backoff_max_ms}"
        raise table.error("backoff_max_ms", problem)
    return spec
