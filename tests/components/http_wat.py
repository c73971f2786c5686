"""Component text for an actor that serves HTTP with no SDK: ``theater:simple/http-framework`` imports and the
``theater:simple/http-handlers`` exports written out in the canonical ABI.

:func:`http_actor` is the only entry point. Its ``init`` creates a server (127.0.0.1, an ephemeral port), registers
three handlers, adds two routes and a websocket path, and starts the server:

* ``GET /bytes`` answers 200 with ``body`` (the state passes through unchanged);
* ``GET /count`` adds one to a count kept in the state and answers it (8 bytes, little endian);
* ``/ws`` echoes every websocket message as it came (``handle-websocket-message`` returns a list of one), and
  counts the connections that ended (``handle-websocket-disconnect``).

The state is 24 bytes: the count, the handler id of ``/count`` and the number of disconnects (u64s, little
endian), so a reopened instance (no ``init``: the runtime brings the servers back from the record) still knows its
routes. A host call
answering ``err`` makes ``init`` answer ``err`` with the host's text.

The layout follows the canonical ABI as wit-component would lower and lift ``wit/http.wit``: imported interface
types are named inside the instance type; the exported functions go through a small component that imports the
record and variant types and re-exports them next to the functions (as in :mod:`tests.components.supervisor_wat`).
Only the functions the actor uses are declared: the host links by name and structure.
"""

from __future__ import annotations

from .wat import BUMP_REALLOC, _wat_bytes

__all__ = ["BODY", "http_actor"]

#: The default ``/bytes`` answer: 1 KiB.
BODY = bytes(range(256)) * 4

HTTP_FRAMEWORK = "theater:simple/http-framework"
HTTP_HANDLERS = "theater:simple/http-handlers"
ACTOR = "theater:simple/actor"

_DATA = 1024
_RESULT_U64 = "(result (result u64 (error string)))"
_FRAMEWORK_FUNCS = {
    "create-server": (f'(func (param "config" $server-config) {_RESULT_U64})',
                      "(param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)"),
    "start-server": ('(func (param "server-id" u64) (result (result u16 (error string))))', "(param i64 i32)"),
    "register-handler": (f'(func (param "handler-name" string) {_RESULT_U64})', "(param i32 i32 i32)"),
    "add-route": (f'(func (param "server-id" u64) (param "path" string) (param "method" string)'
                  f' (param "handler-id" u64) {_RESULT_U64})', "(param i64 i32 i32 i32 i32 i64 i32)"),
    "enable-websocket": ('(func (param "server-id" u64) (param "path" string) (param "connect-handler-id" (option u64))'
                         ' (param "message-handler-id" u64) (param "disconnect-handler-id" (option u64))'
                         ' (result (result (error string))))', "(param i64 i32 i32 i32 i64 i64 i32 i64 i32)"),
}

# Record and variant types of ``http-types`` / ``websocket-types``, structurally.
_REQUEST = ('(record (field "method" string) (field "uri" string) (field "headers" (list (tuple string string)))'
            ' (field "body" (option (list u8))))')
_RESPONSE = ('(record (field "status" u16) (field "headers" (list (tuple string string)))'
             ' (field "body" (option (list u8))))')
_MESSAGE_TYPE = ('(variant (case "text") (case "binary") (case "connect") (case "close") (case "ping") (case "pong")'
                 ' (case "other" string))')
_MESSAGE = '(record (field "ty" {mt}) (field "data" (option (list u8))) (field "text" (option string)))'

_EXPORT_TYPES = {
    "handle-request": ('(param "state" $state) (param "params" (tuple u64 $http-request{s}))'
                       ' (result (result (tuple $state (tuple $http-response{s})) (error string)))'),
    "handle-websocket-message": ('(param "state" $state) (param "params" (tuple u64 u64 $websocket-message{s}))'
                                 ' (result (result (tuple $state (tuple (list $websocket-message{s})))'
                                 ' (error string)))'),
    "handle-websocket-disconnect": '(param "state" $state) (param "params" (tuple u64 u64))'
                                   ' (result (result (tuple $state) (error string)))',
}

_CORE = r"""
  (core module $Actor
    (import "env" "memory" (memory 0))
    (import "env" "cabi_realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "env" "heap_reset" (func $heap_reset))
{imports}
    (data (i32.const {data}) "{bytes}")

    ;; err(the string at p) as an init result
    (func $init_err (param $p i32) (result i32)
      (local $out i32)
      (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 12)))
      (i32.store8 (local.get $out) (i32.const 1))
      (i32.store offset=4 (local.get $out) (i32.load (local.get $p)))
      (i32.store offset=8 (local.get $out) (i32.load offset=4 (local.get $p)))
      (local.get $out))

    ;; the u64 at offset $at of a state (0 when it has none or a short one)
    (func $field (param $sh i32) (param $sp i32) (param $sl i32) (param $at i32) (result i64)
      (if (result i64) (i32.and (local.get $sh) (i32.ge_u (local.get $sl) (i32.const 24)))
        (then (i64.load (i32.add (local.get $sp) (local.get $at))))
        (else (i64.const 0))))

    ;; a new state: (count, /count's handler, disconnects)
    (func $state (param $count i64) (param $handler i64) (param $gone i64) (result i32)
      (local $st i32)
      (local.set $st (call $realloc (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 24)))
      (i64.store (local.get $st) (local.get $count))
      (i64.store offset=8 (local.get $st) (local.get $handler))
      (i64.store offset=16 (local.get $st) (local.get $gone))
      (local.get $st))

    (func (export "init") (param $sh i32) (param $sp i32) (param $sl i32) (param $ap i32) (param $al i32)
      (result i32)
      (local $r i32) (local $out i32) (local $st i32) (local $server i64) (local $bytes i64) (local $count i64)
      (local $ws i64)
      (local.set $r (call $realloc (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 16)))
      ;; create-server({port: none, host: none, tls-config: none})
      (call $create-server (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (local.get $r))
      (if (i32.load8_u (local.get $r)) (then (return (call $init_err (i32.add (local.get $r) (i32.const 8))))))
      (local.set $server (i64.load offset=8 (local.get $r)))
      (call $register-handler (i32.const {n_bytes}) (local.get $r))
      (if (i32.load8_u (local.get $r)) (then (return (call $init_err (i32.add (local.get $r) (i32.const 8))))))
      (local.set $bytes (i64.load offset=8 (local.get $r)))
      (call $register-handler (i32.const {n_count}) (local.get $r))
      (if (i32.load8_u (local.get $r)) (then (return (call $init_err (i32.add (local.get $r) (i32.const 8))))))
      (local.set $count (i64.load offset=8 (local.get $r)))
      (call $register-handler (i32.const {n_ws}) (local.get $r))
      (if (i32.load8_u (local.get $r)) (then (return (call $init_err (i32.add (local.get $r) (i32.const 8))))))
      (local.set $ws (i64.load offset=8 (local.get $r)))
      (call $add-route (local.get $server) (i32.const {p_bytes}) (i32.const {get}) (local.get $bytes) (local.get $r))
      (if (i32.load8_u (local.get $r)) (then (return (call $init_err (i32.add (local.get $r) (i32.const 8))))))
      (call $add-route (local.get $server) (i32.const {p_count}) (i32.const {get}) (local.get $count) (local.get $r))
      (if (i32.load8_u (local.get $r)) (then (return (call $init_err (i32.add (local.get $r) (i32.const 8))))))
      (call $enable-websocket (local.get $server) (i32.const {p_ws}) (i32.const 0) (i64.const 0) (local.get $ws)
        (i32.const 1) (local.get $ws) (local.get $r))
      (if (i32.load8_u (local.get $r)) (then (return (call $init_err (i32.add (local.get $r) (i32.const 4))))))
      (call $start-server (local.get $server) (local.get $r))
      (if (i32.load8_u (local.get $r)) (then (return (call $init_err (i32.add (local.get $r) (i32.const 4))))))
      (local.set $st (call $state (call $field (local.get $sh) (local.get $sp) (local.get $sl) (i32.const 0))
                                  (local.get $count)
                                  (call $field (local.get $sh) (local.get $sp) (local.get $sl) (i32.const 16))))
      (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 16)))
      (i32.store8 (local.get $out) (i32.const 0))
      (i32.store8 offset=4 (local.get $out) (i32.const 1))
      (i32.store offset=8 (local.get $out) (local.get $st))
      (i32.store offset=12 (local.get $out) (i32.const 24))
      (local.get $out))

    ;; handle-request(state, (handler, {method, uri, headers, body})) -> ok((state, (response)))
    ;; result layout: 0 tag | 4 state (tag, ptr, len) | 16 status | 20 headers (ptr, len) | 28 body (tag, ptr, len)
    (func (export "handle-request") (param $sh i32) (param $sp i32) (param $sl i32) (param $handler i64)
      (param $mp i32) (param $ml i32) (param $up i32) (param $ul i32) (param $hp i32) (param $hl i32)
      (param $bh i32) (param $bp i32) (param $bl i32) (result i32)
      (local $out i32) (local $st i32)
      (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 40)))
      (i32.store8 (local.get $out) (i32.const 0))
      (i32.store16 offset=16 (local.get $out) (i32.const 200))
      (i32.store offset=20 (local.get $out) (i32.const 0))
      (i32.store offset=24 (local.get $out) (i32.const 0))
      (i32.store8 offset=28 (local.get $out) (i32.const 1))
      (if (i32.and (i32.and (local.get $sh) (i32.ge_u (local.get $sl) (i32.const 24)))
                   (i64.eq (local.get $handler) (i64.load offset=8 (local.get $sp))))
        (then
          ;; /count: one more, kept in a new state and answered
          (local.set $st (call $state (i64.add (i64.load (local.get $sp)) (i64.const 1))
                                      (i64.load offset=8 (local.get $sp)) (i64.load offset=16 (local.get $sp))))
          (i32.store8 offset=4 (local.get $out) (i32.const 1))
          (i32.store offset=8 (local.get $out) (local.get $st))
          (i32.store offset=12 (local.get $out) (i32.const 24))
          (i32.store offset=32 (local.get $out) (local.get $st))
          (i32.store offset=36 (local.get $out) (i32.const 8)))
        (else
          ;; /bytes: the state as it was, the body
          (i32.store8 offset=4 (local.get $out) (local.get $sh))
          (i32.store offset=8 (local.get $out) (local.get $sp))
          (i32.store offset=12 (local.get $out) (local.get $sl))
          (i32.store offset=32 (local.get $out) (i32.const {body}))
          (i32.store offset=36 (local.get $out) (i32.const {body_len}))))
      (local.get $out))

    ;; handle-websocket-message(state, (handler, connection, message)) -> ok((state, ([message])))
    ;; result layout: 0 tag | 4 state (tag, ptr, len) | 16 messages (ptr, len)
    ;; a message: 0 type (tag, other's ptr, len) | 12 data (tag, ptr, len) | 24 text (tag, ptr, len)
    (func (export "handle-websocket-message") (param $sh i32) (param $sp i32) (param $sl i32) (param $handler i64)
      (param $connection i64) (param $tt i32) (param $tp i32) (param $tl i32) (param $dh i32) (param $dp i32)
      (param $dl i32) (param $xh i32) (param $xp i32) (param $xl i32) (result i32)
      (local $out i32) (local $m i32)
      (local.set $m (call $realloc (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 36)))
      (i32.store8 (local.get $m) (local.get $tt))
      (i32.store offset=4 (local.get $m) (local.get $tp))
      (i32.store offset=8 (local.get $m) (local.get $tl))
      (i32.store8 offset=12 (local.get $m) (local.get $dh))
      (i32.store offset=16 (local.get $m) (local.get $dp))
      (i32.store offset=20 (local.get $m) (local.get $dl))
      (i32.store8 offset=24 (local.get $m) (local.get $xh))
      (i32.store offset=28 (local.get $m) (local.get $xp))
      (i32.store offset=32 (local.get $m) (local.get $xl))
      (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 24)))
      (i32.store8 (local.get $out) (i32.const 0))
      (i32.store8 offset=4 (local.get $out) (local.get $sh))
      (i32.store offset=8 (local.get $out) (local.get $sp))
      (i32.store offset=12 (local.get $out) (local.get $sl))
      (i32.store offset=16 (local.get $out) (local.get $m))
      (i32.store offset=20 (local.get $out) (i32.const 1))
      (local.get $out))

    ;; handle-websocket-disconnect(state, (handler, connection)) -> ok((state)): one more disconnect
    (func (export "handle-websocket-disconnect") (param $sh i32) (param $sp i32) (param $sl i32)
      (param $handler i64) (param $connection i64) (result i32)
      (local $out i32)
      (local.set $out (call $realloc (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 16)))
      (i32.store8 (local.get $out) (i32.const 0))
      (i32.store8 offset=4 (local.get $out) (i32.const 1))
      (i32.store offset=8 (local.get $out)
        (call $state (call $field (local.get $sh) (local.get $sp) (local.get $sl) (i32.const 0))
                     (call $field (local.get $sh) (local.get $sp) (local.get $sl) (i32.const 8))
                     (i64.add (call $field (local.get $sh) (local.get $sp) (local.get $sl) (i32.const 16))
                              (i64.const 1))))
      (i32.store offset=12 (local.get $out) (i32.const 24))
      (local.get $out))

    (func (export "post-return") (param i32) (call $heap_reset))
  )
"""


def http_actor(body: bytes = BODY) -> str:
    """Component text of the actor described in the module's docstring; ``/bytes`` answers ``body``."""
    data = bytearray()

    def add(value: bytes) -> tuple[int, int]:
        at = _DATA + len(data)
        data.extend(value)
        while len(data) % 8:
            data.append(0)
        return at, len(value)

    def pair(value: str) -> str:
        at, n = add(value.encode())
        return f"{at}) (i32.const {n}"

    fill = {
        "n_bytes": pair("bytes"), "n_count": pair("count"), "n_ws": pair("ws"),
        "p_bytes": pair("/bytes"), "p_count": pair("/count"), "p_ws": pair("/ws"), "get": pair("GET"),
    }
    body_at, body_len = add(body)
    heap_base = (_DATA + len(data) + 4095) // 4096 * 4096
    imports = "\n".join(f'    (import "{HTTP_FRAMEWORK}" "{fn}" (func ${fn} {sig}))'
                        for fn, (_, sig) in _FRAMEWORK_FUNCS.items())
    core = _CORE
    for key, value in fill.items():
        core = core.replace("{" + key + "}", value)
    core = (core.replace("{imports}", imports).replace("{data}", str(_DATA)).replace("{bytes}", _wat_bytes(bytes(data)))
            .replace("{body}", str(body_at)).replace("{body_len}", str(body_len)))

    out: list[str] = ["(component"]
    w = out.append
    # ---- the http-framework import: its record types named inside the instance type
    w("  (type $t-hf (instance")
    w('    (type $tls-def (record (field "cert-path" string) (field "key-path" string)))')
    w('    (export "tls-config" (type $tls-config (eq $tls-def)))')
    w('    (type $config-def (record (field "port" (option u16)) (field "host" (option string))'
      ' (field "tls-config" (option $tls-config))))')
    w('    (export "server-config" (type $server-config (eq $config-def)))')
    for fn, (ftype, _) in _FRAMEWORK_FUNCS.items():
        w(f'    (export "{fn}" {ftype})')
    w("  ))")
    w(f'  (import "{HTTP_FRAMEWORK}" (instance $hf (type $t-hf)))')
    # ---- memory and a bump allocator; heap_reset runs in every post-return
    w(f"""  (core module $Mem
    (memory (export "memory") {heap_base // 65536 + 1})
    (global $bump (mut i32) (i32.const {heap_base}))
    (func (export "heap_reset") (global.set $bump (i32.const {heap_base})))
{BUMP_REALLOC}  )
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "cabi_realloc" (core func $realloc))""")
    for fn in _FRAMEWORK_FUNCS:
        w(f'  (core func $hf.{fn} (canon lower (func $hf "{fn}") (memory $memory) (realloc $realloc)))')
    w(core)
    w("  (core instance $actor (instantiate $Actor")
    w('    (with "env" (instance $mem))')
    exports = " ".join(f'(export "{fn}" (func $hf.{fn}))' for fn in _FRAMEWORK_FUNCS)
    w(f'    (with "{HTTP_FRAMEWORK}" (instance {exports}))')
    w("  ))")
    # ---- lifted exports
    w("  (type $state (option (list u8)))")
    w(f"  (type $http-request {_REQUEST})")
    w(f"  (type $http-response {_RESPONSE})")
    w(f"  (type $message-type {_MESSAGE_TYPE})")
    w(f"  (type $websocket-message {_MESSAGE.format(mt='$message-type')})")
    opts = '(memory $memory) (realloc $realloc) (post-return (core func $actor "post-return"))'
    w('  (func $init (param "state" $state) (param "params" (tuple string))'
      ' (result (result (tuple $state) (error string)))')
    w(f'    (canon lift (core func $actor "init") {opts}))')
    for fn, ftype in _EXPORT_TYPES.items():
        w(f"  (func ${fn} {ftype.format(s='')}")
        w(f'    (canon lift (core func $actor "{fn}") {opts}))')
    w('  (instance $actor-exports (export "init" (func $init)))')
    w(f'  (export "{ACTOR}" (instance $actor-exports))')
    # Like wit-component: a small component imports the named types and re-exports them next to the functions.
    w("  (component $HttpHandlers")
    w("    (type $state (option (list u8)))")
    w(f"    (type $req-def {_REQUEST})")
    w('    (import "import-type-http-request" (type $http-request-in (eq $req-def)))')
    w(f"    (type $resp-def {_RESPONSE})")
    w('    (import "import-type-http-response" (type $http-response-in (eq $resp-def)))')
    w(f"    (type $mt-def {_MESSAGE_TYPE})")
    w('    (import "import-type-message-type" (type $message-type-in (eq $mt-def)))')
    w(f"    (type $wm-def {_MESSAGE.format(mt='$message-type-in')})")
    w('    (import "import-type-websocket-message" (type $websocket-message-in (eq $wm-def)))')
    for fn, ftype in _EXPORT_TYPES.items():
        w(f'    (import "import-func-{fn}" (func ${fn} {ftype.format(s="-in")}))')
    w('    (export $http-request-out "http-request" (type $http-request-in))')
    w('    (export $http-response-out "http-response" (type $http-response-in))')
    # the exported message refers to the exported variant (an instance names every type its exports use)
    w('    (export $message-type-out "message-type" (type $message-type-in))')
    w(f"    (type $wm-out-def {_MESSAGE.format(mt='$message-type-out')})")
    w('    (export $websocket-message-out "websocket-message" (type $websocket-message-in) (type (eq $wm-out-def)))')
    for fn, ftype in _EXPORT_TYPES.items():
        w(f'    (export "{fn}" (func ${fn}) (func {ftype.format(s="-out")}))')
    w("  )")
    w("  (instance $hh-exports (instantiate $HttpHandlers")
    for t in ("http-request", "http-response", "message-type", "websocket-message"):
        w(f'    (with "import-type-{t}" (type ${t}))')
    for fn in _EXPORT_TYPES:
        w(f'    (with "import-func-{fn}" (func ${fn}))')
    w("  ))")
    w(f'  (export "{HTTP_HANDLERS}" (instance $hh-exports))')
    w(")")
    return "\n".join(out) + "\n"
