"""Generate component-model WAT for small ``theater:simple`` test actors.

Tests describe an actor by picking a *behaviour* for each handler from a menu
(:func:`echo`, :func:`count`, :func:`store_now`, :func:`trap`, ...); this
module writes the canonical-ABI plumbing.  The result is component text that
``wasmtime.component.Component(engine, text)`` accepts as is.

Vocabulary
----------
Every export handler is normalised to the same inputs:

* **state**   -- the incoming ``option<list<u8>>``;
* **param**   -- the handler's string parameter: the actor id for ``init``,
  the request id for ``handle-request``, the channel id for the channel
  handlers; empty for ``handle-send``;
* **msg**     -- the handler's ``list<u8>`` parameter; for the handlers that
  have none (``init``, ``handle-channel-close``) it is the UTF-8 bytes of
  *param*;
* **head** / **tail** -- *msg* split at its first NUL byte
  (``b"actor-b\\0hello"`` -> ``b"actor-b"`` / ``b"hello"``); without a NUL,
  head is the whole message and tail is empty.

and the same outputs:

* the new **state** (starts as the incoming state: a handler that does
  nothing passes it through unchanged);
* the **response** ``option<list<u8>>`` (starts as none).  ``handle-request``
  returns it as its response; ``handle-channel-open`` returns it as
  ``channel-accept.message``; other handlers ignore it;
* the **accept** flag of ``handle-channel-open`` (starts true);
* an optional **error** string; when set, the handler returns ``err(error)``.

A behaviour reads the inputs and the current outputs and changes the outputs;
:func:`seq` runs several in order, :func:`when` / :func:`match_msg` branch on
the message.

Import-calling behaviours turn the host's answer into bytes *R* and set
**both** the new state and the response to ``some(R)``:

* ``ok(list<u8>)`` -> the bytes; ``ok(string)`` -> its UTF-8;
  ``ok(u64)`` -> 8 bytes little endian; ``ok(f64)`` -> the 8 IEEE bytes little
  endian; ``ok(_)`` -> ``b""``;
* ``err(e)`` -> ``ERR_MARKER + e.encode()`` (i.e. ``b"!err:" + e``); the
  handler itself still returns ``ok``.

Exceptions: :func:`log` does not touch the outputs; :func:`get_state` copies
the returned option into state and response unchanged (none stays none);
:func:`list_outstanding` joins the ids with ``b"\\n"``; ``now`` is a plain
``u64`` (no result) and gives 8 LE bytes.

Argument sources
----------------
Behaviours that pass bytes or strings take either a constant (``bytes`` or
``str``) or one of the sources :data:`MSG`, :data:`HEAD`, :data:`TAIL`,
:data:`STATE` (empty when none), :data:`PARAM`.

Imports and exports
-------------------
Imported interfaces are derived from the behaviours used (plus
``actor_wat(imports=...)``) and are declared whole, as in the repo's WIT
(``runtime`` includes every function, whether a behaviour calls it or not), unless
``minimal_imports=True``.  As wit-component would for the repo's WIT, the
interfaces that ``use types.{...}`` re-export those types from a
``theater:simple/types`` import; that import holds only types, so a linker
need not define it.  The ``message-server-client`` export (and its
``event`` / ``channel-id`` / ``channel-accept`` types) is present unless
``message_server=False``.  Presets conform to the repo's ``default`` world
(``wasm-tools component targets wit/ ... --world default``).

Memory
------
A separate core module owns the memory and a bump allocator
(``cabi_realloc``); every export's ``post-return`` resets the bump pointer,
so the heap does not grow across calls.  Constants live at address 1024 and
up.  The only state a guest keeps between calls is the ``$hidden`` global of
:func:`hidden_count`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "ERR_MARKER",
    "INTERFACES",
    "ACTOR",
    "MESSAGE_SERVER_CLIENT",
    "RUNTIME",
    "TIMING",
    "RANDOM",
    "MESSAGE_SERVER_HOST",
    "TYPES",
    "MSG",
    "HEAD",
    "TAIL",
    "STATE",
    "PARAM",
    "Behaviour",
    "actor_wat",
    # behaviours: state / response
    "keep",
    "set_state",
    "store_msg",
    "append_msg",
    "respond",
    "echo",
    "respond_state",
    "count",
    "hidden_count",
    "accept",
    "reject",
    # behaviours: failures
    "trap",
    "fail",
    "spin",
    "grow_memory",
    # behaviours: imports
    "log",
    "get_chain",
    "get_state",
    "shutdown",
    "store_now",
    "sleep",
    "deadline",
    "random_bytes",
    "random_range",
    "random_float",
    "generate_uuid",
    "send_to",
    "request_to",
    "open_channel_to",
    "send_on_channel",
    "close_channel",
    "respond_to_request",
    "cancel_request",
    "list_outstanding",
    # combinators
    "seq",
    "when",
    "match_msg",
    # ready-made actors
    "echo_actor",
    "counter_actor",
    "hidden_state_actor",
    "clock_actor",
    "random_actor",
    "logger_actor",
    "forwarder_actor",
    "deferred_actor",
    "shutdown_actor",
    "faulty_actor",
    "importing_actor",
    # the host's world
    "ENVIRONMENT",
    "FILESYSTEM",
    "STORE",
    "host_call",
]

#: Prefix of the bytes an import-calling behaviour stores when the host
#: returned ``err(e)``: ``ERR_MARKER + e.encode()``.
ERR_MARKER = b"!err:"

PKG = "theater:simple"
ACTOR = f"{PKG}/actor"
MESSAGE_SERVER_CLIENT = f"{PKG}/message-server-client"
RUNTIME = f"{PKG}/runtime"
TIMING = f"{PKG}/timing"
RANDOM = f"{PKG}/random"
MESSAGE_SERVER_HOST = f"{PKG}/message-server-host"

_UNIT_RES = "(result (result (error string)))"

# interface -> func -> (component func type, core signature of the lowered func)
# Lowered signatures follow the canonical ABI: more than one flat result means
# the caller passes a trailing return-area pointer.
INTERFACES: dict[str, dict[str, tuple[str, str]]] = {
    RUNTIME: {
        "log": ('(func (param "msg" string))', "(param i32 i32)"),
        "get-state": ("(func (result (option (list u8))))", "(param i32)"),
        "get-chain": ("(func (result (list $chain-event)))", "(param i32)"),
        "shutdown": (
            f'(func (param "data" (option (list u8))) {_UNIT_RES})',
            "(param i32 i32 i32 i32)",
        ),
    },
    TIMING: {
        "now": ("(func (result u64))", "(result i64)"),
        "sleep": (f'(func (param "duration" u64) {_UNIT_RES})', "(param i64 i32)"),
        "deadline": (f'(func (param "timestamp" u64) {_UNIT_RES})', "(param i64 i32)"),
    },
    RANDOM: {
        "random-bytes": (
            '(func (param "length" u32) (result (result (list u8) (error string))))',
            "(param i32 i32)",
        ),
        "random-range": (
            '(func (param "min" u64) (param "max" u64) (result (result u64 (error string))))',
            "(param i64 i64 i32)",
        ),
        "random-float": ("(func (result (result f64 (error string))))", "(param i32)"),
        "generate-uuid": ("(func (result (result string (error string))))", "(param i32)"),
    },
    MESSAGE_SERVER_HOST: {
        "send": (
            f'(func (param "actor-id" $actor-id) (param "msg" (list u8)) {_UNIT_RES})',
            "(param i32 i32 i32 i32 i32)",
        ),
        "request": (
            '(func (param "actor-id" $actor-id) (param "msg" (list u8))'
            " (result (result (list u8) (error string))))",
            "(param i32 i32 i32 i32 i32)",
        ),
        "open-channel": (
            '(func (param "actor-id" $actor-id) (param "initial-msg" (list u8))'
            " (result (result $channel-id (error string))))",
            "(param i32 i32 i32 i32 i32)",
        ),
        "send-on-channel": (
            f'(func (param "channel-id" $channel-id) (param "msg" (list u8)) {_UNIT_RES})',
            "(param i32 i32 i32 i32 i32)",
        ),
        "close-channel": (
            f'(func (param "channel-id" $channel-id) {_UNIT_RES})',
            "(param i32 i32 i32)",
        ),
        "list-outstanding-requests": ("(func (result (list string)))", "(param i32)"),
        "respond-to-request": (
            f'(func (param "request-id" string) (param "response" (list u8)) {_UNIT_RES})',
            "(param i32 i32 i32 i32 i32)",
        ),
        "cancel-request": (
            f'(func (param "request-id" string) {_UNIT_RES})',
            "(param i32 i32 i32)",
        ),
    },
}

TYPES = f"{PKG}/types"

# Named types of ``theater:simple/types`` (types.wit), as instance-type items.
_TYPES_INSTANCE = """\
    (type $str string)
    (export "actor-id" (type $actor-id (eq $str)))
    (export "channel-id" (type $channel-id (eq $str)))
    (type $ca (record (field "accepted" bool) (field "message" (option (list u8)))))
    (export "channel-accept" (type $channel-accept (eq $ca)))
    (type $ev (record (field "event-type" string) (field "parent" (option u64)) (field "data" (list u8))))
    (export "event" (type $event (eq $ev)))
    (type $me (record (field "hash" u64) (field "event" $event)))
    (export "meta-event" (type $meta-event (eq $me)))
    (type $ch (record (field "events" (list $meta-event))))
    (export "chain" (type $chain (eq $ch)))
    (type $ce (record (field "hash" (list u8)) (field "parent-hash" (option (list u8)))
                      (field "event-type" string) (field "data" (list u8)) (field "timestamp" u64)))
    (export "chain-event" (type $chain-event (eq $ce)))
    (type $et (enum "operation-timeout" "channel-closed" "shutting-down" "function-not-found"
                    "type-mismatch" "internal" "serialization-error" "update-component-error" "paused"))
    (export "wit-error-type" (type $wit-error-type (eq $et)))
    (type $ae (record (field "error-type" $wit-error-type) (field "data" (option (list u8)))))
    (export "wit-actor-error" (type $wit-actor-error (eq $ae)))"""

# Types an interface ``use``s from ``types`` (its WIT ``use types.{...}``).
_USES = {
    RUNTIME: ("chain-event",),
    MESSAGE_SERVER_HOST: ("actor-id", "channel-id"),
    MESSAGE_SERVER_CLIENT: ("event", "channel-id", "channel-accept"),
}

_SHORT = {
    RUNTIME: "runtime",
    TIMING: "timing",
    RANDOM: "random",
    MESSAGE_SERVER_HOST: "msh",
}


# The interfaces of the handlers that reach the host's world (``environment``, ``filesystem``, ``store``).
# ``filesystem``'s ``execute-command`` and ``execute-nix-command`` are left out: their result is a variant of
# records, which this kit does not read (the handler's own tests and the Python SDK test call them).
ENVIRONMENT = f"{PKG}/environment"
FILESYSTEM = f"{PKG}/filesystem"
STORE = f"{PKG}/store"
_STR = '(param "path" string)'
_S2 = '(param "store-id" string) (param "label" string)'
INTERFACES.update({
    ENVIRONMENT: {
        "get-var": ('(func (param "name" string) (result (option string)))', "(param i32 i32 i32)"),
        "list-vars": ("(func (result (list (tuple string string))))", "(param i32)"),
        "exists": ('(func (param "name" string) (result bool))', "(param i32 i32) (result i32)"),
    },
    FILESYSTEM: {
        "read-file": (f"(func {_STR} (result (result (list u8) (error string))))", "(param i32 i32 i32)"),
        "write-file": (f'(func {_STR} (param "content" string) {_UNIT_RES})', "(param i32 i32 i32 i32 i32)"),
        "list-files": (f"(func {_STR} (result (result (list string) (error string))))", "(param i32 i32 i32)"),
        "delete-file": (f"(func {_STR} {_UNIT_RES})", "(param i32 i32 i32)"),
        "create-dir": (f"(func {_STR} {_UNIT_RES})", "(param i32 i32 i32)"),
        "delete-dir": (f"(func {_STR} {_UNIT_RES})", "(param i32 i32 i32)"),
        "path-exists": (f"(func {_STR} (result (result bool (error string))))", "(param i32 i32 i32)"),
    },
    STORE: {
        "new": ("(func (result (result string (error string))))", "(param i32)"),
        "store": ('(func (param "store-id" string) (param "content" (list u8))'
                  " (result (result $content-ref (error string))))", "(param i32 i32 i32 i32 i32)"),
        "get": ('(func (param "store-id" string) (param "content-ref" $content-ref)'
                " (result (result (list u8) (error string))))", "(param i32 i32 i32 i32 i32)"),
        "exists": ('(func (param "store-id" string) (param "content-ref" $content-ref)'
                   " (result (result bool (error string))))", "(param i32 i32 i32 i32 i32)"),
        "label": (f'(func {_S2} (param "content-ref" $content-ref) {_UNIT_RES})', "(param i32 i32 i32 i32 i32 i32 i32)"),
        "get-by-label": (f"(func {_S2} (result (result (option $content-ref) (error string))))",
                         "(param i32 i32 i32 i32 i32)"),
        "remove-label": (f"(func {_S2} {_UNIT_RES})", "(param i32 i32 i32 i32 i32)"),
        "remove-from-label": (f'(func {_S2} (param "content-ref" $content-ref) {_UNIT_RES})',
                              "(param i32 i32 i32 i32 i32 i32 i32)"),
        "store-at-label": (f'(func {_S2} (param "content" (list u8)) (result (result $content-ref (error string))))',
                           "(param i32 i32 i32 i32 i32 i32 i32)"),
        "replace-content-at-label": (f'(func {_S2} (param "content" (list u8))'
                                     " (result (result $content-ref (error string))))",
                                     "(param i32 i32 i32 i32 i32 i32 i32)"),
        "replace-at-label": (f'(func {_S2} (param "content-ref" $content-ref) {_UNIT_RES})',
                             "(param i32 i32 i32 i32 i32 i32 i32)"),
        "list-labels": ('(func (param "store-id" string) (result (result (list string) (error string))))',
                        "(param i32 i32 i32)"),
        "list-all-content": ('(func (param "store-id" string) (result (result (list $content-ref) (error string))))',
                             "(param i32 i32 i32)"),
        "calculate-total-size": ('(func (param "store-id" string) (result (result u64 (error string))))',
                                 "(param i32 i32 i32)"),
    },
})
_SHORT.update({ENVIRONMENT: "env", FILESYSTEM: "fs", STORE: "store"})
# Named types an interface defines itself (instance-type items, before its functions).
_DEFS = {
    STORE: ('(type $cr (record (field "hash" string)))', '(export "content-ref" (type $content-ref (eq $cr)))'),
}
_DATA_BASE = 1024


# --------------------------------------------------------------------------
# argument sources


@dataclass(frozen=True)
class _Src:
    kind: str

    def __repr__(self) -> str:
        return self.kind.upper()


MSG = _Src("msg")
HEAD = _Src("head")
TAIL = _Src("tail")
STATE = _Src("state")
PARAM = _Src("param")

Source = _Src | bytes | str


# --------------------------------------------------------------------------
# emission context


class _Ctx:
    def __init__(self) -> None:
        self.funcs: list[str] = []
        self.needs: set[tuple[str, str]] = set()
        self.data = bytearray()
        self._consts: dict[bytes, int] = {}
        self._memo: dict[int, tuple[Behaviour, str]] = {}

    def const(self, value: bytes | str) -> tuple[int, int]:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if raw not in self._consts:
            self._consts[raw] = _DATA_BASE + len(self.data)
            self.data += raw
            while len(self.data) % 8:
                self.data += b"\0"
        return self._consts[raw], len(raw)

    def need(self, iface: str, func: str) -> str:
        self.needs.add((iface, func))
        return f"${_SHORT[iface]}.{func}"

    def src(self, value: Source) -> str:
        """Instructions pushing (ptr, len) of ``value``."""
        if isinstance(value, _Src):
            g = {"msg": "m", "head": "h", "tail": "t", "state": "st", "param": "a"}[value.kind]
            return f"(global.get ${g}_ptr) (global.get ${g}_len)"
        if isinstance(value, (bytes, bytearray, str)):
            ptr, n = self.const(value)
            return f"(i32.const {ptr}) (i32.const {n})"
        raise TypeError(f"not an argument source: {value!r}")

    def func(self, behaviour: "Behaviour") -> str:
        key = id(behaviour)
        if key in self._memo:  # the same object used twice: one function
            return self._memo[key][1]
        name = f"$b{len(self.funcs)}"
        self.funcs.append("")  # reserve the slot so numbering is stable
        self._memo[key] = (behaviour, name)  # keeps it alive: ids stay unique
        body = behaviour.body(self)
        locals_ = "".join(f" (local ${n} {t})" for n, t in behaviour.locals)
        text = f"    ;; {behaviour.describe()}\n    (func {name}{locals_}\n"
        body = textwrap.indent(textwrap.dedent(body.strip("\n")).strip(), "      ")
        text += body + "\n" if body else ""
        text += "    )"
        self.funcs[int(name[2:])] = text
        return name


# --------------------------------------------------------------------------
# behaviours


@dataclass
class Behaviour:
    """One step of a handler. Build them with the functions of this module."""

    name: str
    args: tuple = ()
    code: str = ""  # instruction text; {placeholders} are filled by body()
    locals: tuple[tuple[str, str], ...] = ()
    children: tuple["Behaviour", ...] = ()
    sources: dict = field(default_factory=dict)
    imports: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        if self.children:
            inner = ", ".join(c.describe() for c in self.children)
            return f"{self.name}({', '.join([*map(repr, self.args), inner])})"
        return f"{self.name}({', '.join(map(repr, self.args))})"

    def body(self, ctx: _Ctx) -> str:
        fill: dict[str, str] = {}
        for key, value in self.sources.items():
            fill[key] = ctx.src(value)
        for iface, fn in self.imports:
            fill[_ident(iface, fn)] = ctx.need(iface, fn)
        for i, child in enumerate(self.children):
            fill[f"c{i}"] = ctx.func(child)
        return self.code.format(**fill)



# A bump allocator's cabi_realloc over the module's $bump global, growing memory as needed (new blocks are copied
# from the old one): the body shared by the kit's components.
BUMP_REALLOC = """    (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $ptr i32) (local $end i32) (local $have i32)
      (local.set $ptr (i32.and (i32.add (global.get $bump) (i32.sub (local.get $align) (i32.const 1)))
                               (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $ptr) (local.get $size)))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 0xffff))
                                              (i32.const 16)))
                      (i32.const -1))
            (then unreachable))))
      (global.set $bump (local.get $end))
      (if (local.get $old)
        (then (memory.copy (local.get $ptr) (local.get $old)
                (select (local.get $old_size) (local.get $size) (i32.lt_u (local.get $old_size) (local.get $size))))))
      (local.get $ptr))
"""

def _ident(iface: str, fn: str) -> str:
    return f"{_SHORT[iface]}_{fn.replace('-', '_')}"


def _opt(value: Source | None, setter: str, key: str) -> tuple[str, dict]:
    if value is None:
        return f"(call {setter} (i32.const 0) (i32.const 0) (i32.const 0))", {}
    return f"(call {setter} (i32.const 1) {{{key}}})", {key: value}


def keep() -> Behaviour:
    """Do nothing: state passes through, no response."""
    return Behaviour("keep")


def set_state(value: Source | None) -> Behaviour:
    """New state = ``some(value)``, or none when ``value is None``."""
    code, src = _opt(value, "$set_state", "v")
    return Behaviour("set_state", (value,), code, sources=src)


def store_msg() -> Behaviour:
    """New state = ``some(msg)``."""
    b = set_state(MSG)
    b.name, b.args = "store_msg", ()
    return b


def append_msg(sep: bytes = b"") -> Behaviour:
    """New state = state (empty when none) + sep + msg; the response too."""
    code = """
    (local.set $p (call $concat {st} {sep}))
    (local.set $n (i32.add (global.get $st_len) {sep_len}))
    (local.set $p (call $concat (local.get $p) (local.get $n) {m}))
    (call $set_both (local.get $p) (i32.add (local.get $n) (global.get $m_len)))
    """
    code = code.replace("{sep_len}", f"(i32.const {len(sep)})")
    return Behaviour(
        "append_msg",
        (sep,) if sep else (),
        code,
        locals=(("p", "i32"), ("n", "i32")),
        sources={"st": STATE, "sep": sep, "m": MSG},
    )


def respond(value: Source | None) -> Behaviour:
    """Response = ``some(value)``, or none when ``value is None``."""
    code, src = _opt(value, "$set_resp", "v")
    return Behaviour("respond", (value,), code, sources=src)


def echo() -> Behaviour:
    """Response = ``some(msg)``; state unchanged."""
    b = respond(MSG)
    b.name, b.args = "echo", ()
    return b


def respond_state() -> Behaviour:
    """Response = the current state (none stays none)."""
    code = "(call $set_resp (global.get $st_has) (global.get $st_ptr) (global.get $st_len))"
    return Behaviour("respond_state", (), code)


def count() -> Behaviour:
    """State is a u64 LE counter (none or shorter than 8 bytes = 0): add one;
    response = the new count (8 bytes LE)."""
    code = """
    (local.set $v (i64.const 0))
    (if (i32.and (global.get $st_has) (i32.ge_u (global.get $st_len) (i32.const 8)))
      (then (local.set $v (i64.load (global.get $st_ptr)))))
    (call $set_both (call $u64_bytes (i64.add (local.get $v) (i64.const 1))) (i32.const 8))
    """
    return Behaviour("count", (), code, locals=(("v", "i64"),))


def hidden_count() -> Behaviour:
    """Increment a core-wasm global that survives between calls (and is *not*
    part of the state); state = response = its value, 8 bytes LE.  A fresh
    instance starts from 0, so replaying from the middle of a chain diverges."""
    code = """
    (global.set $hidden (i64.add (global.get $hidden) (i64.const 1)))
    (call $set_both (call $u64_bytes (global.get $hidden)) (i32.const 8))
    """
    return Behaviour("hidden_count", (), code)


def accept() -> Behaviour:
    """``handle-channel-open``: accept (the default)."""
    return Behaviour("accept", (), "(global.set $accept (i32.const 1))")


def reject() -> Behaviour:
    """``handle-channel-open``: refuse the channel."""
    return Behaviour("reject", (), "(global.set $accept (i32.const 0))")


def trap() -> Behaviour:
    """Execute ``unreachable``."""
    return Behaviour("trap", (), "unreachable")


def fail(text: Source = "failure requested") -> Behaviour:
    """The handler returns ``err(text)``; ``text`` may be :data:`MSG` etc.
    (it must then be valid UTF-8, else lifting the string traps)."""
    return Behaviour("fail", (text,), "(call $fail {t})", sources={"t": text})


def spin() -> Behaviour:
    """Loop forever (for fuel and epoch-deadline tests)."""
    return Behaviour("spin", (), "(loop $forever (br $forever))")


def grow_memory(pages: int = 1, on_failure: str = "trap") -> Behaviour:
    """``memory.grow(pages)`` in a loop until it returns -1, then trap
    (``on_failure="trap"``) or return ``err("memory.grow failed")``
    (``on_failure="err"``).  Never stops without a store memory limit (the
    32-bit memory tops out at 4 GiB of address space, then grow fails)."""
    if on_failure == "trap":
        tail = "unreachable"
        src: dict = {}
    elif on_failure == "err":
        tail = "(call $fail {t})"
        src = {"t": "memory.grow failed"}
    else:
        raise ValueError("on_failure must be 'trap' or 'err'")
    code = f"""
    (loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const {int(pages)})) (i32.const -1))))
    {tail}
    """
    return Behaviour("grow_memory", (pages, on_failure), code, sources=src)


# --- imports ---------------------------------------------------------------


def _call(name: str, args: tuple, iface: str, fn: str, pre: str, handle: str,
          sources: dict | None = None, size: int = 16) -> Behaviour:
    code = f"""
    (local.set $ret (call $alloc (i32.const {size})))
    (call {{{_ident(iface, fn)}}} {pre} (local.get $ret))
    {handle}
    """
    return Behaviour(
        name, args, code, locals=(("ret", "i32"),), sources=sources or {},
        imports=((iface, fn),),
    )


def log(text: Source = MSG) -> Behaviour:
    """``runtime.log(text)`` (default: the message, which must be UTF-8).
    Outputs are unchanged."""
    code = f"(call {{{_ident(RUNTIME, 'log')}}} {{t}})"
    return Behaviour("log", (text,), code, sources={"t": text}, imports=((RUNTIME, "log"),))


def get_state() -> Behaviour:
    """``runtime.get-state()``: state = response = the returned option."""
    handle = """
    (call $set_state (i32.load8_u (local.get $ret)) (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret)))
    (call $set_resp (i32.load8_u (local.get $ret)) (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret)))
    """
    return _call("get_state", (), RUNTIME, "get-state", "", handle)


def get_chain() -> Behaviour:
    """``runtime.get-chain()``; R = the number of events, 8 bytes LE."""
    handle = "(call $set_both (call $u64_bytes (i64.extend_i32_u (i32.load offset=4 (local.get $ret)))) (i32.const 8))"
    return _call("get_chain", (), RUNTIME, "get-chain", "", handle)


def shutdown(data: Source | None = None) -> Behaviour:
    """``runtime.shutdown(data)`` (None = ``none``); R = b"" on ok."""
    if data is None:
        pre, src = "(i32.const 0) (i32.const 0) (i32.const 0)", {}
    else:
        pre, src = "(i32.const 1) {d}", {"d": data}
    return _call("shutdown", (data,), RUNTIME, "shutdown", pre,
                 "(call $result_unit (local.get $ret))", src)


def store_now() -> Behaviour:
    """``timing.now()``; state = response = the u64, 8 bytes LE."""
    code = f"(call $set_both (call $u64_bytes (call {{{_ident(TIMING, 'now')}}})) (i32.const 8))"
    return Behaviour("store_now", (), code, imports=((TIMING, "now"),))


def sleep(duration: int) -> Behaviour:
    """``timing.sleep(duration)``; R = b"" on ok."""
    return _call("sleep", (duration,), TIMING, "sleep", f"(i64.const {int(duration)})",
                 "(call $result_unit (local.get $ret))")


def deadline(timestamp: int) -> Behaviour:
    """``timing.deadline(timestamp)``; R = b"" on ok."""
    return _call("deadline", (timestamp,), TIMING, "deadline", f"(i64.const {int(timestamp)})",
                 "(call $result_unit (local.get $ret))")


def random_bytes(length: int = 16) -> Behaviour:
    """``random.random-bytes(length)``; R = the bytes."""
    return _call("random_bytes", (length,), RANDOM, "random-bytes", f"(i32.const {int(length)})",
                 "(call $result_ptrlen (local.get $ret))")


def random_range(lo: int, hi: int) -> Behaviour:
    """``random.random-range(lo, hi)``; R = the u64, 8 bytes LE."""
    return _call("random_range", (lo, hi), RANDOM, "random-range",
                 f"(i64.const {int(lo)}) (i64.const {int(hi)})",
                 "(call $result_64 (local.get $ret))")


def random_float() -> Behaviour:
    """``random.random-float()``; R = the f64 bits, 8 bytes LE
    (``struct.unpack('<d', R)``)."""
    return _call("random_float", (), RANDOM, "random-float", "",
                 "(call $result_64 (local.get $ret))")


def generate_uuid() -> Behaviour:
    """``random.generate-uuid()``; R = the string's UTF-8."""
    return _call("generate_uuid", (), RANDOM, "generate-uuid", "",
                 "(call $result_ptrlen (local.get $ret))")


def _two(name: str, fn: str, handle: str, first: Source, second: Source) -> Behaviour:
    return _call(name, (first, second), MESSAGE_SERVER_HOST, fn, "{a} {b}",
                 f"(call {handle} (local.get $ret))", {"a": first, "b": second})


def _one(name: str, fn: str, first: Source) -> Behaviour:
    return _call(name, (first,), MESSAGE_SERVER_HOST, fn, "{a}",
                 "(call $result_unit (local.get $ret))", {"a": first})


def send_to(target: Source = HEAD, payload: Source = TAIL) -> Behaviour:
    """``message-server-host.send(target, payload)``; R = b"" on ok.
    Default: message = target + b"\\0" + payload."""
    return _two("send_to", "send", "$result_unit", target, payload)


def request_to(target: Source = HEAD, payload: Source = TAIL) -> Behaviour:
    """``message-server-host.request(target, payload)``; R = the reply bytes."""
    return _two("request_to", "request", "$result_ptrlen", target, payload)


def open_channel_to(target: Source = HEAD, payload: Source = TAIL) -> Behaviour:
    """``message-server-host.open-channel(target, payload)``; R = channel id."""
    return _two("open_channel_to", "open-channel", "$result_ptrlen", target, payload)


def send_on_channel(channel: Source = HEAD, payload: Source = TAIL) -> Behaviour:
    """``message-server-host.send-on-channel(channel, payload)``; R = b"" on ok."""
    return _two("send_on_channel", "send-on-channel", "$result_unit", channel, payload)


def close_channel(channel: Source = MSG) -> Behaviour:
    """``message-server-host.close-channel(channel)``; R = b"" on ok."""
    return _one("close_channel", "close-channel", channel)


def respond_to_request(request_id: Source = HEAD, payload: Source = TAIL) -> Behaviour:
    """``message-server-host.respond-to-request(request_id, payload)``;
    R = b"" on ok."""
    return _two("respond_to_request", "respond-to-request", "$result_unit", request_id, payload)


def cancel_request(request_id: Source = MSG) -> Behaviour:
    """``message-server-host.cancel-request(request_id)``; R = b"" on ok."""
    return _one("cancel_request", "cancel-request", request_id)


def list_outstanding() -> Behaviour:
    """``message-server-host.list-outstanding-requests()``; R = the ids joined
    with b"\\n" (b"" when there are none)."""
    return _call("list_outstanding", (), MESSAGE_SERVER_HOST, "list-outstanding-requests", "",
                 "(call $join_strings (i32.load (local.get $ret)) (i32.load offset=4 (local.get $ret)))",
                 size=8)


# --- the host's world: environment, filesystem, store --------------------------
#
# ``host_call(iface, fn, *args, result=...)`` calls any function of these interfaces with sources as arguments
# (a ``content-ref`` is its hash string) and turns the answer into R by the shape of its result:
# ``ptrlen`` (list<u8>, string or content-ref), ``unit``, ``u64`` (8 bytes LE), ``bool`` (result<bool>: 8 bytes
# LE 0/1), ``strings`` (a list of strings or content-refs joined with "\n"), ``option`` (option<string>: the
# string, or b"" for none), ``optref`` (result<option<content-ref>>: the hash, or b"" for none), ``flag`` (a
# bare bool: 8 bytes LE), ``count`` (a bare list: its length, 8 bytes LE).

_WORLD_HANDLES = {
    "ptrlen": "(call $result_ptrlen (local.get $ret))",
    "unit": "(call $result_unit (local.get $ret))",
    "u64": "(call $result_64 (local.get $ret))",
    "bool": """(if (i32.load8_u (local.get $ret))
      (then (call $import_err (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))
      (else (call $set_both (call $u64_bytes (i64.extend_i32_u (i32.load8_u offset=4 (local.get $ret))))
                            (i32.const 8))))""",
    "strings": """(if (i32.load8_u (local.get $ret))
      (then (call $import_err (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))
      (else (call $join_strings (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret)))))""",
    "option": """(if (i32.load8_u (local.get $ret))
      (then (call $set_both (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))
      (else (call $set_both (i32.const 0) (i32.const 0))))""",
    "optref": """(if (i32.load8_u (local.get $ret))
      (then (call $import_err (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))
      (else (if (i32.load8_u offset=4 (local.get $ret))
        (then (call $set_both (i32.load offset=8 (local.get $ret)) (i32.load offset=12 (local.get $ret))))
        (else (call $set_both (i32.const 0) (i32.const 0))))))""",
    "count": "(call $set_both (call $u64_bytes (i64.extend_i32_u (i32.load offset=4 (local.get $ret)))) (i32.const 8))",
}


def host_call(iface: str, fn: str, *args: Source, result: str = "ptrlen") -> Behaviour:
    """Call ``iface.fn`` with ``args`` (sources) and set R from its answer (see above)."""
    keys = {f"a{i}": arg for i, arg in enumerate(args)}
    pre = " ".join(f"{{{k}}}" for k in keys)
    if result == "flag":
        code = f"(call $set_both (call $u64_bytes (i64.extend_i32_u (call {{{_ident(iface, fn)}}} {pre}))) (i32.const 8))"
        return Behaviour(f"{_SHORT[iface]}.{fn}", args, code, sources=keys, imports=((iface, fn),))
    return _call(f"{_SHORT[iface]}.{fn}", args, iface, fn, pre, _WORLD_HANDLES[result], keys)


# --- combinators -----------------------------------------------------------


def seq(*steps: Behaviour) -> Behaviour:
    """Run ``steps`` in order; each sees the outputs of the previous ones as
    its current state (``STATE``) and response."""
    code = "\n".join(f"(call {{c{i}}})" for i in range(len(steps)))
    return Behaviour("seq", (), code, children=tuple(steps))


def when(match: bytes, then: Behaviour, otherwise: Behaviour | None = None) -> Behaviour:
    """If msg == ``match`` run ``then`` else ``otherwise`` (default: keep)."""
    otherwise = otherwise or keep()
    code = """
    (if (call $msg_eq {m})
      (then (call {c0}))
      (else (call {c1})))
    """
    return Behaviour("when", (match,), code, children=(then, otherwise), sources={"m": match})


def match_msg(cases: Mapping[bytes, Behaviour], default: Behaviour | None = None) -> Behaviour:
    """``when`` chained over ``cases`` (message -> behaviour)."""
    result = default or keep()
    for key, behaviour in reversed(list(cases.items())):
        result = when(key, behaviour, result)
    return result


# --------------------------------------------------------------------------
# component assembly

_RUNTIME_HELPERS = r"""
  ;; ---- allocation and output helpers ------------------------------------
  (func $alloc (param $size i32) (result i32)
    (call $realloc (i32.const 0) (i32.const 0) (i32.const 8) (local.get $size)))
  (func $concat (param $p1 i32) (param $n1 i32) (param $p2 i32) (param $n2 i32) (result i32)
    (local $p i32)
    (local.set $p (call $alloc (i32.add (local.get $n1) (local.get $n2))))
    (memory.copy (local.get $p) (local.get $p1) (local.get $n1))
    (memory.copy (i32.add (local.get $p) (local.get $n1)) (local.get $p2) (local.get $n2))
    (local.get $p))
  (func $u64_bytes (param $v i64) (result i32)
    (local $p i32)
    (local.set $p (call $alloc (i32.const 8)))
    (i64.store (local.get $p) (local.get $v))
    (local.get $p))
  (func $set_state (param $has i32) (param $ptr i32) (param $len i32)
    (global.set $st_has (local.get $has))
    (global.set $st_ptr (select (local.get $ptr) (i32.const 0) (local.get $has)))
    (global.set $st_len (select (local.get $len) (i32.const 0) (local.get $has))))
  (func $set_resp (param $has i32) (param $ptr i32) (param $len i32)
    (global.set $r_has (local.get $has))
    (global.set $r_ptr (select (local.get $ptr) (i32.const 0) (local.get $has)))
    (global.set $r_len (select (local.get $len) (i32.const 0) (local.get $has))))
  (func $set_both (param $ptr i32) (param $len i32)
    (call $set_state (i32.const 1) (local.get $ptr) (local.get $len))
    (call $set_resp (i32.const 1) (local.get $ptr) (local.get $len)))
  (func $fail (param $ptr i32) (param $len i32)
    (global.set $err (i32.const 1))
    (global.set $err_ptr (local.get $ptr))
    (global.set $err_len (local.get $len)))
  (func $msg_eq (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $n) (global.get $m_len)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                    (i32.load8_u (i32.add (global.get $m_ptr) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  ;; ---- turning host results into R (see module docstring) ----------------
  (func $import_err (param $ptr i32) (param $len i32)
    (call $set_both
      (call $concat (i32.const {marker_ptr}) (i32.const {marker_len}) (local.get $ptr) (local.get $len))
      (i32.add (i32.const {marker_len}) (local.get $len))))
  ;; result<_, string>: tag @0, error string @4/@8
  (func $result_unit (param $ret i32)
    (if (i32.load8_u (local.get $ret))
      (then (call $import_err (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))
      (else (call $set_both (i32.const 0) (i32.const 0)))))
  ;; result<list<u8> | string, string>: tag @0, payload @4/@8
  (func $result_ptrlen (param $ret i32)
    (if (i32.load8_u (local.get $ret))
      (then (call $import_err (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))
      (else (call $set_both (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))))
  ;; result<u64 | f64, string>: tag @0, payload @8 (string @8/@12)
  (func $result_64 (param $ret i32)
    (if (i32.load8_u (local.get $ret))
      (then (call $import_err (i32.load offset=8 (local.get $ret)) (i32.load offset=12 (local.get $ret))))
      (else (call $set_both (call $u64_bytes (i64.load offset=8 (local.get $ret))) (i32.const 8)))))
  ;; list<string> at (ptr, count) -> ids joined with "\n"
  (func $join_strings (param $ptr i32) (param $count i32)
    (local $i i32) (local $total i32) (local $out i32) (local $at i32) (local $e i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (local.set $e (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 3))))
      (local.set $total (i32.add (local.get $total) (i32.load offset=4 (local.get $e))))
      (if (local.get $i) (then (local.set $total (i32.add (local.get $total) (i32.const 1)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.set $out (call $alloc (local.get $total)))
    (local.set $i (i32.const 0))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
      (local.set $e (i32.add (local.get $ptr) (i32.shl (local.get $i) (i32.const 3))))
      (if (local.get $i) (then
        (i32.store8 (i32.add (local.get $out) (local.get $at)) (i32.const 10))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))))
      (memory.copy (i32.add (local.get $out) (local.get $at))
                   (i32.load (local.get $e)) (i32.load offset=4 (local.get $e)))
      (local.set $at (i32.add (local.get $at) (i32.load offset=4 (local.get $e))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (call $set_both (local.get $out) (local.get $total)))

  ;; ---- entry / exit -------------------------------------------------------
  (func $begin (param $sh i32) (param $sp i32) (param $sl i32)
               (param $ap i32) (param $al i32) (param $mp i32) (param $ml i32)
    (local $i i32)
    (call $set_state (local.get $sh) (local.get $sp) (local.get $sl))
    (call $set_resp (i32.const 0) (i32.const 0) (i32.const 0))
    (global.set $accept (i32.const 1))
    (global.set $err (i32.const 0))
    (global.set $a_ptr (local.get $ap))
    (global.set $a_len (local.get $al))
    (global.set $m_ptr (local.get $mp))
    (global.set $m_len (local.get $ml))
    ;; head / tail: split msg at the first NUL
    (global.set $h_ptr (local.get $mp))
    (global.set $h_len (local.get $ml))
    (global.set $t_ptr (i32.add (local.get $mp) (local.get $ml)))
    (global.set $t_len (i32.const 0))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $ml)))
      (if (i32.eqz (i32.load8_u (i32.add (local.get $mp) (local.get $i))))
        (then
          (global.set $h_len (local.get $i))
          (global.set $t_ptr (i32.add (i32.add (local.get $mp) (local.get $i)) (i32.const 1)))
          (global.set $t_len (i32.sub (i32.sub (local.get $ml) (local.get $i)) (i32.const 1)))
          (br $done)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
  ;; result<tuple<option<list<u8>>>, string>: tag @0; ok: option @4 (tag @4, ptr @8, len @12)
  ;; err: string @4/@8
  (func $ret_simple (result i32)
    (local $p i32)
    (local.set $p (call $alloc (i32.const 16)))
    (if (global.get $err)
      (then
        (i32.store8 (local.get $p) (i32.const 1))
        (i32.store offset=4 (local.get $p) (global.get $err_ptr))
        (i32.store offset=8 (local.get $p) (global.get $err_len)))
      (else
        (i32.store8 (local.get $p) (i32.const 0))
        (i32.store8 offset=4 (local.get $p) (global.get $st_has))
        (i32.store offset=8 (local.get $p) (global.get $st_ptr))
        (i32.store offset=12 (local.get $p) (global.get $st_len))))
    (local.get $p))
  ;; result<tuple<option<list<u8>>, tuple<option<list<u8>>>>, string>:
  ;; ok: state option @4..16, response option @16..28
  (func $ret_request (result i32)
    (local $p i32)
    (local.set $p (call $ret_simple))
    (if (i32.eqz (global.get $err))
      (then
        (i32.store8 offset=16 (local.get $p) (global.get $r_has))
        (i32.store offset=20 (local.get $p) (global.get $r_ptr))
        (i32.store offset=24 (local.get $p) (global.get $r_len))))
    (local.get $p))
  ;; result<tuple<option<list<u8>>, tuple<channel-accept>>, string>:
  ;; ok: state option @4..16, accepted: bool @16, message option @20..32
  (func $ret_open (result i32)
    (local $p i32)
    (local.set $p (call $ret_simple))
    (if (i32.eqz (global.get $err))
      (then
        (i32.store8 offset=16 (local.get $p) (global.get $accept))
        (i32.store8 offset=20 (local.get $p) (global.get $r_has))
        (i32.store offset=24 (local.get $p) (global.get $r_ptr))
        (i32.store offset=28 (local.get $p) (global.get $r_len))))
    (local.get $p))
  (func (export "post-return") (param i32)
    (call $heap_reset))
"""

_GLOBALS = ["st_has", "st_ptr", "st_len", "r_has", "r_ptr", "r_len", "accept",
            "err", "err_ptr", "err_len", "a_ptr", "a_len", "m_ptr", "m_len",
            "h_ptr", "h_len", "t_ptr", "t_len"]

# handler -> (export interface, wit name, core params, begin() args, exit function)
_HANDLERS = {
    "init": (ACTOR, "init", "$sh $sp $sl $ap $al", "$sh $sp $sl $ap $al $ap $al", "$ret_simple"),
    "send": (MESSAGE_SERVER_CLIENT, "handle-send", "$sh $sp $sl $mp $ml",
             "$sh $sp $sl #0 #0 $mp $ml", "$ret_simple"),
    "request": (MESSAGE_SERVER_CLIENT, "handle-request", "$sh $sp $sl $ap $al $mp $ml",
                "$sh $sp $sl $ap $al $mp $ml", "$ret_request"),
    "channel_open": (MESSAGE_SERVER_CLIENT, "handle-channel-open", "$sh $sp $sl $ap $al $mp $ml",
                     "$sh $sp $sl $ap $al $mp $ml", "$ret_open"),
    "channel_message": (MESSAGE_SERVER_CLIENT, "handle-channel-message",
                        "$sh $sp $sl $ap $al $mp $ml", "$sh $sp $sl $ap $al $mp $ml", "$ret_simple"),
    "channel_close": (MESSAGE_SERVER_CLIENT, "handle-channel-close", "$sh $sp $sl $ap $al",
                      "$sh $sp $sl $ap $al $ap $al", "$ret_simple"),
}

_SIMPLE = "(result (tuple $state) (error string))"
_EXPORT_TYPES = {
    "init": f'(param "state" $state) (param "params" (tuple string)) (result {_SIMPLE})',
    "handle-send": f'(param "state" $state) (param "params" (tuple (list u8))) (result {_SIMPLE})',
    "handle-request": '(param "state" $state) (param "params" (tuple string (list u8)))'
                      ' (result (result (tuple $state (tuple $state)) (error string)))',
    "handle-channel-open": '(param "state" $state) (param "params" (tuple string (list u8)))'
                           ' (result (result (tuple $state (tuple {ca})) (error string)))',
    "handle-channel-message": '(param "state" $state) (param "params" (tuple {cid} (list u8)))'
                              f" (result {_SIMPLE})",
    "handle-channel-close": f'(param "state" $state) (param "params" (tuple {{cid}})) (result {_SIMPLE})',
}
_MSC_FUNCS = ["handle-send", "handle-request", "handle-channel-open",
              "handle-channel-message", "handle-channel-close"]
# local definitions the message-server-client shim re-exports (== types.wit)
_MSC_TYPE_DEFS = {
    "event": '(record (field "event-type" string) (field "parent" (option u64)) (field "data" (list u8)))',
    "channel-id": "string",
    "channel-accept": '(record (field "accepted" bool) (field "message" (option (list u8))))',
}


def _export_type(fn: str, suffix: str = "") -> str:
    return _EXPORT_TYPES[fn].replace("{ca}", f"$channel-accept{suffix}").replace(
        "{cid}", f"$channel-id{suffix}")


def _as_behaviour(value: Behaviour | None) -> Behaviour:
    if value is None:
        return keep()
    if not isinstance(value, Behaviour):
        raise TypeError(f"expected a Behaviour, got {value!r}")
    return value


def actor_wat(
    *,
    init: Behaviour | None = None,
    send: Behaviour | None = None,
    request: Behaviour | None = None,
    channel_open: Behaviour | None = None,
    channel_message: Behaviour | None = None,
    channel_close: Behaviour | None = None,
    imports: Iterable[str] = (),
    message_server: bool = True,
    minimal_imports: bool = False,
) -> str:
    """Component text for an actor whose handlers run the given behaviours
    (``None`` = :func:`keep`).

    ``imports``: extra interfaces (e.g. ``"theater:simple/random"``) to import
    even if no behaviour uses them.  Every imported interface is imported
    whole (all of its functions, as in :data:`INTERFACES`) unless
    ``minimal_imports`` is true, in which case only the used functions are
    declared (an extra interface then still declares all of its functions).
    ``message_server=False`` omits the ``message-server-client`` export (the
    ``send`` ... ``channel_close`` behaviours must then be None).
    """
    chosen = {
        "init": init, "send": send, "request": request, "channel_open": channel_open,
        "channel_message": channel_message, "channel_close": channel_close,
    }
    if not message_server:
        extra = [k for k, v in chosen.items() if k != "init" and v is not None]
        if extra:
            raise ValueError(f"message_server=False but behaviours given for {extra}")
    ctx = _Ctx()
    ctx.const(ERR_MARKER)
    handlers = ["init"] + (list(_HANDLERS)[1:] if message_server else [])
    default = keep()  # one shared function for all handlers left as None
    entry = {h: ctx.func(_as_behaviour(chosen[h]) if chosen[h] is not None else default)
             for h in handlers}

    extra_ifaces = list(dict.fromkeys(imports))
    for iface in extra_ifaces:
        if iface not in INTERFACES:
            raise ValueError(f"unknown interface {iface!r}; known: {sorted(INTERFACES)}")
    used_ifaces = {i for i, _ in ctx.needs}
    ifaces = [i for i in INTERFACES if i in used_ifaces or i in extra_ifaces]
    declared: dict[str, list[str]] = {}
    for iface in ifaces:
        if minimal_imports and iface not in extra_ifaces:
            declared[iface] = [f for f in INTERFACES[iface] if (iface, f) in ctx.needs]
        else:
            declared[iface] = list(INTERFACES[iface])

    data_end = _DATA_BASE + len(ctx.data)
    heap_base = max(2048, (data_end + 15) // 16 * 16)
    pages = heap_base // 65536 + 1
    marker_ptr, marker_len = ctx.const(ERR_MARKER)

    out: list[str] = ["(component"]
    w = out.append

    # ---- imports ---------------------------------------------------------
    # Like wit-component output for the repo's WIT: interfaces that
    # ``use types.{...}`` re-export those types from a ``theater:simple/types``
    # import (types only, so a linker need not define it).
    uses: dict[str, list[str]] = {}
    for iface in ifaces:
        wanted = _USES.get(iface, ())
        if minimal_imports and iface not in extra_ifaces:
            texts = " ".join(INTERFACES[iface][fn][0] for fn in declared[iface])
            wanted = tuple(t for t in wanted if f"${t})" in texts or f"${t} " in texts)
        uses[iface] = list(wanted)
    outer = sorted({t for ts in uses.values() for t in ts}
                   | (set(_USES[MESSAGE_SERVER_CLIENT]) if message_server else set()))
    if outer:
        w("  (type $t-types (instance")
        w(_TYPES_INSTANCE)
        w("  ))")
        w(f'  (import "{TYPES}" (instance $types (type $t-types)))')
        for t in outer:
            w(f'  (alias export $types "{t}" (type ${t}))')
    for iface in ifaces:
        short = _SHORT[iface]
        w(f"  (type $t-{short} (instance")
        for t in uses[iface]:
            w(f"    (alias outer 1 ${t} (type ${t}-outer))")
            w(f'    (export "{t}" (type ${t} (eq ${t}-outer)))')
        for line in _DEFS.get(iface, ()):
            w(f"    {line}")
        for fn in declared[iface]:
            w(f'    (export "{fn}" {INTERFACES[iface][fn][0]})')
        w("  ))")
        w(f'  (import "{iface}" (instance ${short} (type $t-{short})))')

    # ---- memory + allocator -----------------------------------------------
    w(f"""
  ;; memory and a bump allocator; heap_reset runs in every post-return
  (core module $Mem
    (memory (export "memory") {pages})
    (global $bump (mut i32) (i32.const {heap_base}))
    (func (export "heap_reset") (global.set $bump (i32.const {heap_base})))
{BUMP_REALLOC}  )
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "cabi_realloc" (core func $realloc))
""")
    # ---- lowered imports --------------------------------------------------
    for iface in ifaces:
        short = _SHORT[iface]
        for fn in declared[iface]:
            w(f'  (core func ${short}.{fn} (canon lower (func ${short} "{fn}") (memory $memory) (realloc $realloc)))')

    # ---- the actor's core module -----------------------------------------
    w("\n  (core module $Actor")
    w('    (import "env" "memory" (memory 0))')
    w('    (import "env" "cabi_realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))')
    w('    (import "env" "heap_reset" (func $heap_reset))')
    for iface in ifaces:
        short = _SHORT[iface]
        for fn in declared[iface]:
            w(f'    (import "{iface}" "{fn}" (func ${short}.{fn} {INTERFACES[iface][fn][1]}))')
    for g in _GLOBALS:
        w(f"    (global ${g} (mut i32) (i32.const 0))")
    w("    (global $hidden (mut i64) (i64.const 0))  ;; survives between calls")
    if ctx.data:
        w(f'    (data (i32.const {_DATA_BASE}) "{_wat_bytes(bytes(ctx.data))}")')
    helpers = _RUNTIME_HELPERS.replace("{marker_ptr}", str(marker_ptr))
    w(textwrap.indent(helpers.replace("{marker_len}", str(marker_len)), "  "))
    w("    ;; ---- behaviours -------------------------------------------------------")
    out.extend(ctx.funcs)
    w("\n    ;; ---- exported handlers ------------------------------------------------")
    for h in handlers:
        _, wit_name, params, begin_args, exit_fn = _HANDLERS[h]
        ps = " ".join(f"(param {p} i32)" for p in params.split())
        args = " ".join("(i32.const 0)" if a == "#0" else f"(local.get {a})" for a in begin_args.split())
        w(f'    (func (export "{wit_name}") {ps} (result i32)')
        w(f"      (call $begin {args})")
        w(f"      (call {entry[h]})")
        w(f"      (call {exit_fn}))")
    w("  )")

    # ---- instantiate ------------------------------------------------------
    w("  (core instance $actor (instantiate $Actor")
    w('    (with "env" (instance $mem))')
    for iface in ifaces:
        short = _SHORT[iface]
        exports = " ".join(f'(export "{fn}" (func ${short}.{fn}))' for fn in declared[iface])
        w(f'    (with "{iface}" (instance {exports}))')
    w("  ))")

    # ---- lifted exports ---------------------------------------------------
    w("\n  (type $state (option (list u8)))")
    opts = '(memory $memory) (realloc $realloc) (post-return (core func $actor "post-return"))'
    for h in handlers:
        wit_name = _HANDLERS[h][1]
        w(f"  (func ${wit_name} {_export_type(wit_name)}")
        w(f'    (canon lift (core func $actor "{wit_name}") {opts}))')
    w('  (instance $actor-exports (export "init" (func $init)))')
    w(f'  (export "{ACTOR}" (instance $actor-exports))')
    if message_server:
        # An exported interface must export the named types its functions
        # mention; like wit-component we route the functions through a small
        # component that imports the types (from theater:simple/types) and
        # re-exports them next to the functions.
        used = _USES[MESSAGE_SERVER_CLIENT]
        w("  (component $MessageServerClient")
        w("    (type $state (option (list u8)))")
        for t in used:
            w(f"    (type ${t}-def {_MSC_TYPE_DEFS[t]})")
            w(f'    (import "import-type-{t}" (type ${t}-in (eq ${t}-def)))')
        for fn in _MSC_FUNCS:
            w(f'    (import "import-func-{fn}" (func ${fn} {_export_type(fn, "-in")}))')
        for t in used:
            w(f'    (export ${t} "{t}" (type ${t}-in))')
        for fn in _MSC_FUNCS:
            w(f'    (export "{fn}" (func ${fn}) (func {_export_type(fn)}))')
        w("  )")
        w("  (instance $msc-exports (instantiate $MessageServerClient")
        for t in used:
            w(f'    (with "import-type-{t}" (type ${t}))')
        for fn in _MSC_FUNCS:
            w(f'    (with "import-func-{fn}" (func ${fn}))')
        w("  ))")
        w(f'  (export "{MESSAGE_SERVER_CLIENT}" (instance $msc-exports))')
    w(")")
    return "\n".join(out) + "\n"


def _wat_bytes(raw: bytes) -> str:
    out = []
    for b in raw:
        c = chr(b)
        if 0x20 <= b < 0x7F and c not in '"\\':
            out.append(c)
        else:
            out.append(f"\\{b:02x}")
    return "".join(out)


# --------------------------------------------------------------------------
# ready-made actors


def echo_actor() -> str:
    """init keeps state; handle-send and handle-channel-message store the
    message as the state; handle-request answers with the message;
    handle-channel-open accepts (message none); handle-channel-close keeps."""
    return actor_wat(send=store_msg(), request=echo(), channel_message=store_msg())


def counter_actor() -> str:
    """State = u64 LE count (none -> 0).  handle-send and handle-request
    increment it; handle-request answers with the new count (8 bytes LE)."""
    return actor_wat(send=count(), request=count())


def hidden_state_actor() -> str:
    """Every handle-send / handle-request increments a counter kept in a core
    global (not in the state); state and response = that counter, 8 bytes LE.
    Its output depends on how many calls *this instance* has seen."""
    return actor_wat(send=hidden_count(), request=hidden_count())


def clock_actor() -> str:
    """handle-send / handle-request: state (and response) = ``timing.now()``
    as 8 bytes LE."""
    return actor_wat(send=store_now(), request=store_now())


def random_actor(length: int = 16) -> str:
    """handle-send / handle-request: state (and response) =
    ``random.random-bytes(length)`` (or ``ERR_MARKER + err``)."""
    return actor_wat(send=random_bytes(length), request=random_bytes(length))


def logger_actor() -> str:
    """init logs the actor id; handle-send logs the message (UTF-8) and keeps
    the state; handle-request logs it and echoes it back."""
    return actor_wat(init=log(PARAM), send=log(MSG), request=seq(log(MSG), echo()))


def forwarder_actor() -> str:
    """Message = target actor id + b"\\0" + payload.  handle-send ->
    ``send(target, payload)``; handle-request -> ``request(target, payload)``
    and answers with the reply (``ERR_MARKER + err`` on error); both store R
    as the state."""
    return actor_wat(send=send_to(), request=request_to())


def deferred_actor() -> str:
    """handle-request answers none and stores the request id as the state;
    a later handle-send calls ``respond-to-request(state, msg)`` (state
    becomes R: b"" on success, ``ERR_MARKER + err`` on error)."""
    return actor_wat(request=seq(set_state(PARAM), respond(None)),
                     send=respond_to_request(STATE, MSG))


def shutdown_actor() -> str:
    """handle-send calls ``runtime.shutdown(some(msg))``; state = R."""
    return actor_wat(send=shutdown(MSG))


def faulty_actor() -> str:
    """Echo actor (as :func:`echo_actor`) whose handle-send and handle-request
    misbehave on command: ``b"trap"`` traps, ``b"fail"`` returns
    ``err("failure requested")``, ``b"spin"`` loops forever, ``b"grow"`` grows
    memory until refused and then traps."""
    bad = {b"trap": trap(), b"fail": fail(), b"spin": spin(), b"grow": grow_memory()}
    return actor_wat(send=match_msg(bad, store_msg()), request=match_msg(bad, echo()),
                     channel_message=store_msg())


def importing_actor(*interfaces: str) -> str:
    """Echo actor that also imports ``interfaces`` (whole) without using them:
    instantiating it needs a linker that provides them."""
    return actor_wat(send=store_msg(), request=echo(), channel_message=store_msg(),
                     imports=interfaces)


# ---- echo components for value shapes ----------------------------------------------------------------------------

_ECHO_RET_AREA = 16  # results are stored here (up to 16 slots of 4 bytes, below the heap at 1024)


def echo_component(types: Mapping[str, tuple[str, int]], *, type_defs: str = "",
                   through_host: bool = False) -> str:
    """A component exporting ``name: func(v: T) -> T`` for each ``name: (T, slots)`` of ``types``, returning its
    argument unchanged.

    ``T`` is component type text (``"(option (list u8))"``, ``"$rec"`` for a type of ``type_defs``). The guest copies
    the flat values of its argument to its return area, so ``T`` must be a type whose flat form is ``slots`` i32s
    (2 to 16) laid out in memory as consecutive 4-byte slots: lists and strings, and options, results, tuples and
    records of them (a discriminant takes a slot). A wrong ``slots`` fails to compile. ``type_defs`` is component
    text placed before the exports; a record must be exported there to be used, e.g.
    ``(type $r0 (record (field "a" (list u8)))) (export $rec "rec" (type $r0))`` (with ``through_host``, imported:
    ``(import "rec" (type $rec (eq $r0)))``). An export's name must differ from the names of the types.

    With ``through_host`` the component also imports each ``name: func(v: T) -> T`` and its export calls that import
    with its argument and returns the import's result: the value crosses into the host and back on its way.

    The component also exports ``take: func(b: list<u8>) -> u32`` (the length of what it was given) and
    ``give: func(n: u32) -> list<u8>`` (``n`` bytes of its memory: a run of 0x5a bytes), to time each direction.
    """
    w: list[str] = []
    a = w.append
    a("(component")
    if type_defs:
        a(f"  {type_defs}")
    for name, (ty, slots) in types.items():
        if not 2 <= slots <= 16:
            raise ValueError(f"{name}: slots must be 2 to 16, got {slots}")
        if through_host:
            a(f'  (import "{name}" (func $host-{name} (param "v" {ty}) (result {ty})))')
    a(f"""  (core module $Mem
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "post-return") (param i32) (global.set $bump (i32.const 1024)))
{BUMP_REALLOC}  )
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "cabi_realloc" (core func $realloc))
  (alias core export $mem "post-return" (core func $post))""")
    if through_host:
        for name in types:
            a(f"  (core func $lowered-{name} (canon lower (func $host-{name}) (memory $memory) (realloc $realloc)))")
    a("  (core module $Echo")
    a('    (import "env" "memory" (memory 1))')
    a('    (import "env" "cabi_realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))')
    for name, (_, slots) in types.items():
        params = " ".join(["i32"] * slots)
        if through_host:
            a(f'    (import "host" "{name}" (func $host-{name} (param {params} i32)))')
    for name, (_, slots) in types.items():
        params = " ".join(["i32"] * slots)
        a(f'    (func (export "{name}") (param {params}) (result i32)')
        if through_host:
            args = " ".join(f"(local.get {i})" for i in range(slots))
            a(f"      (call $host-{name} {args} (i32.const {_ECHO_RET_AREA}))")
        else:
            for i in range(slots):
                a(f"      (i32.store offset={4 * i} (i32.const {_ECHO_RET_AREA}) (local.get {i}))")
        a(f"      (i32.const {_ECHO_RET_AREA}))")
    a(f"""    (func (export "take") (param i32 i32) (result i32) (local.get 1))
    (func (export "give") (param $n i32) (result i32)
      (local $ptr i32)
      (local.set $ptr (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $n)))
      (memory.fill (local.get $ptr) (i32.const 0x5a) (local.get $n))
      (i32.store (i32.const {_ECHO_RET_AREA}) (local.get $ptr))
      (i32.store offset=4 (i32.const {_ECHO_RET_AREA}) (local.get $n))
      (i32.const {_ECHO_RET_AREA}))
  )""")
    host_instance = ""
    if through_host:
        exports = " ".join(f'(export "{name}" (func $lowered-{name}))' for name in types)
        a(f"  (core instance $host {exports})")
        host_instance = ' (with "host" (instance $host))'
    a('  (core instance $env (export "memory" (memory $memory)) (export "cabi_realloc" (func $realloc)))')
    a(f'  (core instance $echo (instantiate $Echo (with "env" (instance $env)){host_instance}))')
    opts = "(memory $memory) (realloc $realloc) (post-return $post)"
    for name, (ty, _) in types.items():
        a(f'  (func (export "{name}") (param "v" {ty}) (result {ty}) (canon lift (core func $echo "{name}") {opts}))')
    a(f'  (func (export "take") (param "b" (list u8)) (result u32) (canon lift (core func $echo "take") {opts}))')
    a(f'  (func (export "give") (param "n" u32) (result (list u8)) (canon lift (core func $echo "give") {opts}))')
    a(")")
    return "\n".join(w)
