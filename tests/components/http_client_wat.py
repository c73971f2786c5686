"""Component text for an actor that calls ``theater:simple/http-client`` with no SDK, built with the kit of
:mod:`tests.components.wat`.

:func:`client_actor` is the only entry point: an actor whose ``handle-request`` makes ``calls`` GETs of the URL its
message holds, one after the other (each a ``send-http`` host call: a recorded call, lowered and lifted in the
canonical ABI), and answers ``done``, or the first ``err`` text after ``wat.ERR_MARKER``. The guest does nothing
else, so the time of a request is the runtime's: ``tools/bench_http.py`` sets it next to aiohttp's own client.

The ``http-client`` interface is declared (only while :func:`client_actor` writes the text) with its types written
out structurally (the host links by name and structure), as ``tests.components.http_wat`` does for
``http-framework``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import wat

__all__ = ["HTTP_CLIENT", "client_actor"]

HTTP_CLIENT = "theater:simple/http-client"

_REQUEST = ('(record (field "method" string) (field "uri" string) (field "headers" (list (tuple string string)))'
            ' (field "body" (option (list u8))))')
_RESPONSE = ('(record (field "status" u16) (field "headers" (list (tuple string string)))'
             ' (field "body" (option (list u8))))')

_SEND_HTTP = ('(func (param "req" $http-request) (result (result $http-response (error string))))',
              # method, uri, headers (ptr, len each), body (tag, ptr, len), the return area
              "(param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)")
_TYPES = (f"(type $rq {_REQUEST})", '(export "http-request" (type $http-request (eq $rq)))',
          f"(type $rs {_RESPONSE})", '(export "http-response" (type $http-response (eq $rs)))')


@contextmanager
def _declared() -> Iterator[None]:
    """The kit's tables with this interface in them (its request and response records defined inside it), for
    the time of one generation only: other components and harnesses that list the kit's interfaces never see it."""
    wat.INTERFACES[HTTP_CLIENT] = {"send-http": _SEND_HTTP}
    wat._SHORT[HTTP_CLIENT] = "http"
    wat._DEFS[HTTP_CLIENT] = _TYPES
    try:
        yield
    finally:
        del wat.INTERFACES[HTTP_CLIENT], wat._SHORT[HTTP_CLIENT], wat._DEFS[HTTP_CLIENT]


def _get_many(calls: int) -> wat.Behaviour:
    """``calls`` GETs of the URL in the message, stopping at the first ``err`` (which becomes the response)."""
    code = f"""
    (local.set $ret (call $alloc (i32.const 32)))
    (local.set $left (i32.const {int(calls)}))
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $left)))
        ;; send-http(method "GET", uri the message, no headers, no body)
        (call {{{wat._ident(HTTP_CLIENT, "send-http")}}} {{get}} {{uri}} (i32.const 0) (i32.const 0)
          (i32.const 0) (i32.const 0) (i32.const 0) (local.get $ret))
        (if (i32.load8_u (local.get $ret))
          (then
            (call $import_err (i32.load offset=4 (local.get $ret)) (i32.load offset=8 (local.get $ret)))
            (return)))
        (local.set $left (i32.sub (local.get $left) (i32.const 1)))
        (br $again)))
    (call $set_both {{done}})
    """
    return wat.Behaviour(
        "get_many", (calls,), code, locals=(("ret", "i32"), ("left", "i32")),
        sources={"get": "GET", "uri": wat.MSG, "done": "done"}, imports=((HTTP_CLIENT, "send-http"),),
    )


def client_actor(calls: int) -> str:
    """An actor whose every request makes ``calls`` GETs of the URL its message holds (see the module)."""
    with _declared():
        return wat.actor_wat(request=_get_many(calls))
