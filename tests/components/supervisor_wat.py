"""Component WAT for supervising test actors: the ``supervisor`` import and the ``supervisor-handlers`` export.

Builds on :mod:`tests.components.wat`: the same vocabulary (state, param, msg, head / tail, the response, R), the
same behaviours and combinators, the same canonical-ABI helpers. What this module adds:

* behaviours calling ``theater:simple/supervisor``: :func:`spawn`, :func:`resume`, :func:`list_children`,
  :func:`stop_child`, :func:`restart_child`, :func:`get_child_state`, :func:`get_child_events`. Like the kit's
  import-calling behaviours they set **both** the new state and the response to ``some(R)``:

  - ``spawn`` / ``resume``: R = the child id, or ``ERR_MARKER + err``;
  - ``list-children``: R = the ids joined with ``b"\\n"``;
  - ``stop-child`` / ``restart-child``: R = ``b""`` on ok;
  - ``get-child-state``: state = response = the returned option (none stays none);
  - ``get-child-events``: R = the number of events, 8 bytes little endian;

* :func:`append` (state = state + parts, the response too) and :func:`match_head` / :func:`when_head`, which branch
  on the message's head (the part before its first NUL), so one handler can serve commands such as
  ``b"spawn\\0" + manifest``;
* the ``supervisor-handlers`` export, with two more handlers. ``handle-child-error``: param = the child id,
  head = the ``wit-error-type`` case name (e.g. ``b"internal"``), msg = tail = the error's data (empty when none).
  ``handle-child-exit``: param = the child id, msg = the exit data (empty when none), head / tail as usual.

:func:`supervisor_wat` assembles a component (``actor.init``, ``message-server-client.handle-send`` and
``handle-request``, ``supervisor-handlers``); :func:`supervisor_actor` is a ready-made one driven by requests.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from . import wat
from .wat import ERR_MARKER, HEAD, PARAM, TAIL, Behaviour, Source, keep

__all__ = [
    "ERROR_TYPES",
    "SUPERVISOR",
    "SUPERVISOR_HANDLERS",
    "append",
    "get_child_events",
    "get_child_state",
    "list_children",
    "match_head",
    "restart_child",
    "resume",
    "spawn",
    "stop_child",
    "supervisor_actor",
    "supervisor_wat",
    "when_head",
]

SUPERVISOR = f"{wat.PKG}/supervisor"
SUPERVISOR_HANDLERS = f"{wat.PKG}/supervisor-handlers"
ERROR_TYPES = ("operation-timeout", "channel-closed", "shutting-down", "function-not-found", "type-mismatch",
               "internal", "serialization-error", "update-component-error", "paused")

_ID_RESULT = "(result (result string (error string)))"
_UNIT_RESULT = "(result (result (error string)))"
_SUP_FUNCS: dict[str, tuple[str, str]] = {
    "spawn": (f'(func (param "manifest" string) (param "init-bytes" (option (list u8))) {_ID_RESULT})',
              "(param i32 i32 i32 i32 i32 i32)"),
    "resume": (f'(func (param "manifest" string) (param "init-state" (option (list u8))) {_ID_RESULT})',
               "(param i32 i32 i32 i32 i32 i32)"),
    "list-children": ("(func (result (list string)))", "(param i32)"),
    "stop-child": (f'(func (param "child-id" string) {_UNIT_RESULT})', "(param i32 i32 i32)"),
    "restart-child": (f'(func (param "child-id" string) {_UNIT_RESULT})', "(param i32 i32 i32)"),
    "get-child-state": ('(func (param "child-id" string) (result (result (option (list u8)) (error string))))',
                        "(param i32 i32 i32)"),
    "get-child-events": ('(func (param "child-id" string) (result (result (list $chain-event) (error string))))',
                         "(param i32 i32 i32)"),
}

_GLOBAL_OF = {"msg": "m", "head": "h", "tail": "t", "state": "st", "param": "a"}


# --------------------------------------------------------------------------
# behaviours


def _sup(name: str, args: tuple, fn: str, pre: str, handle: str, sources: dict) -> Behaviour:
    code = f"""
    (local.set $ret (call $alloc (i32.const 16)))
    (call $sup.{fn} {pre} (local.get $ret))
    {handle}
    """
    return Behaviour(name, args, code, locals=(("ret", "i32"),), sources=sources)


def _start(name: str, fn: str, manifest: Source, state: Source | None) -> Behaviour:
    if state is None:
        pre, sources = "{m} (i32.const 0) (i32.const 0) (i32.const 0)", {"m": manifest}
    else:
        pre, sources = "{m} (i32.const 1) {s}", {"m": manifest, "s": state}
    return _sup(name, (manifest, state), fn, pre, "(call $result_ptrlen (local.get $ret))", sources)


def spawn(manifest: Source = TAIL, init: Source | None = None) -> Behaviour:
    """``supervisor.spawn(manifest, init)`` (None = ``none``); R = the child id."""
    return _start("spawn", "spawn", manifest, init)


def resume(manifest: Source = TAIL, state: Source | None = None) -> Behaviour:
    """``supervisor.resume(manifest, state)`` (None = ``none``); R = the child id."""
    return _start("resume", "resume", manifest, state)


def list_children() -> Behaviour:
    """``supervisor.list-children()``; R = the ids joined with ``b"\\n"``."""
    handle = "(call $join_strings (i32.load (local.get $ret)) (i32.load offset=4 (local.get $ret)))"
    return _sup("list_children", (), "list-children", "", handle, {})


def stop_child(child: Source = TAIL) -> Behaviour:
    """``supervisor.stop-child(child)``; R = ``b""`` on ok."""
    return _sup("stop_child", (child,), "stop-child", "{c}", "(call $result_unit (local.get $ret))", {"c": child})


def restart_child(child: Source = TAIL) -> Behaviour:
    """``supervisor.restart-child(child)``; R = ``b""`` on ok."""
    return _sup("restart_child", (child,), "restart-child", "{c}", "(call $result_unit (local.get $ret))",
                {"c": child})


def get_child_state(child: Source = TAIL) -> Behaviour:
    """``supervisor.get-child-state(child)``: state = response = the returned option."""
    handle = """
    (if (i32.load8_u (local.get $ret))
      (then (call $import_err (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))
      (else
        (call $set_state (i32.load8_u offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))
                         (i32.load offset=12 (local.get $ret)))
        (call $set_resp (i32.load8_u offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))
                        (i32.load offset=12 (local.get $ret)))))
    """
    return _sup("get_child_state", (child,), "get-child-state", "{c}", handle, {"c": child})


def get_child_events(child: Source = TAIL) -> Behaviour:
    """``supervisor.get-child-events(child)``; R = the number of events, 8 bytes LE."""
    handle = """
    (if (i32.load8_u (local.get $ret))
      (then (call $import_err (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret))))
      (else (call $set_both (call $u64_bytes (i64.extend_i32_u (i32.load offset=8 (local.get $ret))))
                            (i32.const 8))))
    """
    return _sup("get_child_events", (child,), "get-child-events", "{c}", handle, {"c": child})


def _length(part: Source) -> str:
    if isinstance(part, (bytes, bytearray, str)):
        raw = part.encode() if isinstance(part, str) else part
        return f"(i32.const {len(raw)})"
    return f"(global.get ${_GLOBAL_OF[part.kind]}_len)"


def append(*parts: Source) -> Behaviour:
    """New state = state (empty when none) + each part in turn; the response too."""
    lines = ["(local.set $p (global.get $st_ptr))", "(local.set $n (global.get $st_len))"]
    sources = {}
    for i, part in enumerate(parts):
        sources[f"s{i}"] = part
        lines.append(f"(local.set $p (call $concat (local.get $p) (local.get $n) {{s{i}}}))")
        lines.append(f"(local.set $n (i32.add (local.get $n) {_length(part)}))")
    lines.append("(call $set_both (local.get $p) (local.get $n))")
    return Behaviour("append", parts, "\n".join(lines), locals=(("p", "i32"), ("n", "i32")), sources=sources)


def when_head(match: bytes, then: Behaviour, otherwise: Behaviour | None = None) -> Behaviour:
    """If head == ``match`` run ``then`` else ``otherwise`` (default: keep)."""
    code = """
    (if (call $head_eq {m})
      (then (call {c0}))
      (else (call {c1})))
    """
    return Behaviour("when_head", (match,), code, children=(then, otherwise or keep()), sources={"m": match})


def match_head(cases: Mapping[bytes, Behaviour], default: Behaviour | None = None) -> Behaviour:
    """``when_head`` chained over ``cases`` (head -> behaviour)."""
    result = default or keep()
    for key, behaviour in reversed(list(cases.items())):
        result = when_head(key, behaviour, result)
    return result


# --------------------------------------------------------------------------
# component assembly

_HELPERS = """
  (func $head_eq (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    (if (i32.ne (local.get $n) (global.get $h_len)) (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $p) (local.get $i)))
                    (i32.load8_u (i32.add (global.get $h_ptr) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))
"""

_STATE_RESULT = "(result (result (tuple $state) (error string)))"
_EXPORTS = {
    # wit name -> (core params, core body before the behaviour, component type)
    "init": ("$sh $sp $sl $ap $al", "(call $begin (local.get $sh) (local.get $sp) (local.get $sl) "
             "(local.get $ap) (local.get $al) (local.get $ap) (local.get $al))",
             f'(param "state" $state) (param "params" (tuple string)) {_STATE_RESULT}'),
    "handle-send": ("$sh $sp $sl $mp $ml", "(call $begin (local.get $sh) (local.get $sp) (local.get $sl) "
                    "(i32.const 0) (i32.const 0) (local.get $mp) (local.get $ml))",
                    f'(param "state" $state) (param "params" (tuple (list u8))) {_STATE_RESULT}'),
    "handle-request": ("$sh $sp $sl $ap $al $mp $ml", "(call $begin (local.get $sh) (local.get $sp) "
                       "(local.get $sl) (local.get $ap) (local.get $al) (local.get $mp) (local.get $ml))",
                       '(param "state" $state) (param "params" (tuple string (list u8)))'
                       " (result (result (tuple $state (tuple $state)) (error string)))"),
    "handle-child-error": (
        "$sh $sp $sl $ap $al $et $dh $dp $dl",
        "(call $begin (local.get $sh) (local.get $sp) (local.get $sl) (local.get $ap) (local.get $al) "
        "(select (local.get $dp) (i32.const 0) (local.get $dh)) (select (local.get $dl) (i32.const 0) (local.get $dh)))"
        "\n      (call $error_name (local.get $et))"
        "\n      (global.set $t_ptr (global.get $m_ptr)) (global.set $t_len (global.get $m_len))",
        f'(param "state" $state) (param "params" (tuple string $wit-actor-error{{s}})) {_STATE_RESULT}'),
    "handle-child-exit": (
        "$sh $sp $sl $ap $al $dh $dp $dl",
        "(call $begin (local.get $sh) (local.get $sp) (local.get $sl) (local.get $ap) (local.get $al) "
        "(select (local.get $dp) (i32.const 0) (local.get $dh))"
        " (select (local.get $dl) (i32.const 0) (local.get $dh)))",
        f'(param "state" $state) (param "params" (tuple string (option (list u8)))) {_STATE_RESULT}'),
}
_EXIT = {"handle-request": "$ret_request"}
_HANDLER_FUNCS = ("handle-child-error", "handle-child-exit")


def _error_name_func(ctx: wat._Ctx) -> str:
    lines = ["  (func $error_name (param $et i32)"]
    for index, name in enumerate(ERROR_TYPES):
        ptr, n = ctx.const(name)
        lines.append(f"    (if (i32.eq (local.get $et) (i32.const {index})) (then (global.set $h_ptr (i32.const {ptr}))"
                     f" (global.set $h_len (i32.const {n}))))")
    return "\n".join(lines) + ")"


def _ctype(wit_name: str, suffix: str = "") -> str:
    return _EXPORTS[wit_name][2].replace("{s}", suffix)


def supervisor_wat(
    *,
    init: Behaviour | None = None,
    send: Behaviour | None = None,
    request: Behaviour | None = None,
    child_error: Behaviour | None = None,
    child_exit: Behaviour | None = None,
    handlers: bool = True,
    message_server: bool = True,
) -> str:
    """Component text for a supervising actor whose handlers run the given behaviours (``None`` = keep).

    It imports ``theater:simple/supervisor`` (whole) and every kit interface its behaviours use; it exports
    ``actor.init``, unless ``message_server=False`` ``message-server-client`` (``handle-send`` and
    ``handle-request`` only), and unless ``handlers=False`` ``supervisor-handlers``. With neither of the two
    options and behaviours that import nothing else it targets the repo's ``supervisor-actor`` world.
    """
    if not message_server and (send or request):
        raise ValueError("message_server=False but behaviours given for handle-send or handle-request")
    ctx = wat._Ctx()
    marker_ptr, marker_len = ctx.const(ERR_MARKER)
    chosen = {"init": init}
    if message_server:
        chosen.update({"handle-send": send, "handle-request": request})
    if handlers:
        chosen.update({"handle-child-error": child_error, "handle-child-exit": child_exit})
    default = keep()
    entry = {name: ctx.func(b or default) for name, b in chosen.items()}
    error_name = _error_name_func(ctx)
    ifaces = [i for i in wat.INTERFACES if any(n == i for n, _ in ctx.needs)]
    out: list[str] = ["(component"]
    w = out.append
    _imports(w, ifaces)
    heap_base = max(2048, (wat._DATA_BASE + len(ctx.data) + 15) // 16 * 16)
    _memory(w, heap_base)
    lowered = [(wat._SHORT[i], i, fn, wat.INTERFACES[i][fn][1]) for i in ifaces for fn in wat.INTERFACES[i]]
    lowered += [("sup", SUPERVISOR, fn, sig) for fn, (_, sig) in _SUP_FUNCS.items()]
    for short, _, fn, _ in lowered:
        w(f'  (core func ${short}.{fn} (canon lower (func ${short} "{fn}") (memory $memory) (realloc $realloc)))')
    w("\n  (core module $Actor")
    w('    (import "env" "memory" (memory 0))')
    w('    (import "env" "cabi_realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))')
    w('    (import "env" "heap_reset" (func $heap_reset))')
    for short, iface, fn, sig in lowered:
        w(f'    (import "{iface}" "{fn}" (func ${short}.{fn} {sig}))')
    for g in wat._GLOBALS:
        w(f"    (global ${g} (mut i32) (i32.const 0))")
    w("    (global $hidden (mut i64) (i64.const 0))")
    w(f'    (data (i32.const {wat._DATA_BASE}) "{wat._wat_bytes(bytes(ctx.data))}")')
    helpers = wat._RUNTIME_HELPERS.replace("{marker_ptr}", str(marker_ptr)).replace("{marker_len}", str(marker_len))
    w(textwrap.indent(helpers, "  "))
    w(textwrap.indent(_HELPERS, "  "))
    w(textwrap.indent(error_name, "  "))
    out.extend(ctx.funcs)
    for name in chosen:
        params, begin, _ = _EXPORTS[name]
        ps = " ".join(f"(param {p} i32)" for p in params.split())
        w(f'    (func (export "{name}") {ps} (result i32)\n      {begin}\n      (call {entry[name]})'
          f"\n      (call {_EXIT.get(name, '$ret_simple')}))")
    w("  )")
    w("  (core instance $actor (instantiate $Actor")
    w('    (with "env" (instance $mem))')
    for iface in [*ifaces, SUPERVISOR]:
        exports = " ".join(f'(export "{fn}" (func ${s}.{fn}))' for s, i, fn, _ in lowered if i == iface)
        w(f'    (with "{iface}" (instance {exports}))')
    w("  ))")
    _lifted(w, list(chosen))
    w(")")
    return "\n".join(out) + "\n"


def _imports(w, ifaces: list[str]) -> None:
    w("  (type $t-types (instance")
    w(wat._TYPES_INSTANCE)
    w("  ))")
    w(f'  (import "{wat.TYPES}" (instance $types (type $t-types)))')
    types = {"chain-event", "wit-error-type", "wit-actor-error"}
    for iface in ifaces:
        types.update(wat._USES.get(iface, ()))
    for t in sorted(types):
        w(f'  (alias export $types "{t}" (type ${t}))')
    for iface in ifaces:
        short = wat._SHORT[iface]
        w(f"  (type $t-{short} (instance")
        for t in wat._USES.get(iface, ()):
            w(f"    (alias outer 1 ${t} (type ${t}-outer))")
            w(f'    (export "{t}" (type ${t} (eq ${t}-outer)))')
        for fn, (ftype, _) in wat.INTERFACES[iface].items():
            w(f'    (export "{fn}" {ftype})')
        w("  ))")
        w(f'  (import "{iface}" (instance ${short} (type $t-{short})))')
    w("  (type $t-sup (instance")
    w("    (alias outer 1 $chain-event (type $chain-event-outer))")
    w('    (export "chain-event" (type $chain-event (eq $chain-event-outer)))')
    for fn, (ftype, _) in _SUP_FUNCS.items():
        w(f'    (export "{fn}" {ftype})')
    w("  ))")
    w(f'  (import "{SUPERVISOR}" (instance $sup (type $t-sup)))')


def _memory(w, heap_base: int) -> None:
    w(f"""
  (core module $Mem
    (memory (export "memory") {heap_base // 65536 + 1})
    (global $bump (mut i32) (i32.const {heap_base}))
    (func (export "heap_reset") (global.set $bump (i32.const {heap_base})))
{wat.BUMP_REALLOC}  )
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "cabi_realloc" (core func $realloc))
""")


def _lifted(w, names: list[str]) -> None:
    w("  (type $state (option (list u8)))")
    opts = '(memory $memory) (realloc $realloc) (post-return (core func $actor "post-return"))'
    for name in names:
        w(f"  (func ${name} {_ctype(name)}")
        w(f'    (canon lift (core func $actor "{name}") {opts}))')
    w('  (instance $actor-exports (export "init" (func $init)))')
    w(f'  (export "{wat.ACTOR}" (instance $actor-exports))')
    if "handle-send" in names:
        w('  (instance $msc-exports (export "handle-send" (func $handle-send))'
          ' (export "handle-request" (func $handle-request)))')
        w(f'  (export "{wat.MESSAGE_SERVER_CLIENT}" (instance $msc-exports))')
    if "handle-child-error" not in names:
        return
    # Like wit-component: a small component imports the named types and re-exports them next to the functions.
    et = " ".join(f'"{n}"' for n in ERROR_TYPES)
    w("  (component $SupervisorHandlers")
    w("    (type $state (option (list u8)))")
    w(f"    (type $et-def (enum {et}))")
    w('    (import "import-type-wit-error-type" (type $wit-error-type-in (eq $et-def)))')
    w('    (type $ae-def (record (field "error-type" $wit-error-type-in) (field "data" (option (list u8)))))')
    w('    (import "import-type-wit-actor-error" (type $wit-actor-error-in (eq $ae-def)))')
    for fn in _HANDLER_FUNCS:
        w(f'    (import "import-func-{fn}" (func ${fn} {_ctype(fn, "-in")}))')
    w('    (export $wit-actor-error-out "wit-actor-error" (type $wit-actor-error-in))')
    for fn in _HANDLER_FUNCS:
        w(f'    (export "{fn}" (func ${fn}) (func {_ctype(fn, "-out")}))')
    w("  )")
    w("  (instance $sh-exports (instantiate $SupervisorHandlers")
    w('    (with "import-type-wit-error-type" (type $wit-error-type))')
    w('    (with "import-type-wit-actor-error" (type $wit-actor-error))')
    for fn in _HANDLER_FUNCS:
        w(f'    (with "import-func-{fn}" (func ${fn}))')
    w("  ))")
    w(f'  (export "{SUPERVISOR_HANDLERS}" (instance $sh-exports))')


# --------------------------------------------------------------------------
# ready-made actors


def supervisor_actor(*, init: Behaviour | None = None, child_error: Behaviour | None = None,
                     child_exit: Behaviour | None = None) -> str:
    """A supervisor driven by requests ``command + b"\\0" + argument``; the response is R.

    Commands: ``spawn`` (argument: a manifest), ``resume`` (argument: a manifest; state none), ``list``,
    ``stop``, ``restart``, ``state``, ``events`` (argument: a child id). By default ``handle-child-error``
    appends ``b"error:" + id + b":" + error-type + b";"`` to its state and ``handle-child-exit`` appends
    ``b"exit:" + id + b";"``.
    """
    commands = {
        b"spawn": spawn(TAIL),
        b"resume": resume(TAIL),
        b"list": list_children(),
        b"stop": stop_child(TAIL),
        b"restart": restart_child(TAIL),
        b"state": get_child_state(TAIL),
        b"events": get_child_events(TAIL),
    }
    return supervisor_wat(
        init=init,
        request=match_head(commands),
        child_error=child_error or append(b"error:", PARAM, b":", HEAD, b";"),
        child_exit=child_exit or append(b"exit:", PARAM, b";"),
    )
