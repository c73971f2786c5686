"""The export classes componentize-py calls, translating the ``theater:simple`` contract to ``Actor`` methods.

Every export takes ``state: option<list<u8>>`` and a params tuple and returns the new state with the rest of the
ok tuple, or raises ``componentize_py_types.Err`` for the WIT ``err``. ``dispatch`` runs one call: a fresh actor
object, state decoded, the handler, state encoded. Any exception from the actor's code — ``BaseException``
included, since an exception escaping into componentize-py traps and poisons the instance — becomes ``err``
carrying the traceback, recorded in the actor's chain as ``wasm/error`` with kind ``err``.
"""

from collections.abc import Callable
from typing import Any

from . import _output, _sandbox, web
from ._actor import DEFER, Actor, ChannelAnswer, ChildError, registered
from ._host import BINDINGS, Err
from ._trace import format_error


def _ignore(value: Any) -> Any:
    return None


def dispatch(
    state: bytes | None,
    method: str,
    args: tuple[Any, ...] | Callable[[], tuple[Any, ...]],
    convert: Callable[[Any], Any] = _ignore,
    **context: Any,
) -> tuple[bytes | None, Any]:
    """Call ``method`` of a fresh actor object on ``state``; return the new state bytes and the converted result.

    ``args`` may be a function that builds them, so converting the parameters is inside the boundary too.

    Raises:
        Err: the actor's code raised (the traceback is the error value), or its result or state is invalid.
    """
    _sandbox.seal()
    try:
        actor: Actor = registered()()
        actor.raw_state = state
        actor.state = None if state is None else actor.decode_state(state)
        for name, value in context.items():
            setattr(actor, name, value)
        output = convert(getattr(actor, method)(*(args() if callable(args) else args)))
        new_state = None if actor.state is None else actor.encode_state(actor.state)
        if new_state is not None and not isinstance(new_state, bytes):
            raise TypeError(f"encode_state must return bytes, got {type(new_state).__name__}")
        return new_state, output
    except BaseException as exc:  # the actor boundary: a Python exception here would trap the instance
        raise Err(format_error(exc, __file__)) from None
    finally:
        _output.flush()


def _reply(value: Any) -> bytes | None:
    if value is DEFER:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    hint = " (did you forget a return?)" if value is None else ""
    raise TypeError(
        f"on_request must return bytes or str, or DEFER to answer later; got {type(value).__name__}{hint}"
    )


def _channel_answer(value: Any) -> Any:
    if isinstance(value, bool):
        value = ChannelAnswer(accepted=value)
    if not isinstance(value, ChannelAnswer):
        raise TypeError(f"on_channel_open must return True, False, accept(...) or reject(...), got {value!r}")
    return BINDINGS["types"].ChannelAccept(accepted=value.accepted, message=value.message)


def _child_error(error: Any) -> ChildError:
    kind = getattr(error.error_type, "name", str(error.error_type)).lower().replace("_", "-")
    return ChildError(kind=kind, data=error.data)


class ActorExport:
    """``theater:simple/actor``."""

    def init(self, state: bytes | None, params: tuple[str]) -> tuple[bytes | None]:
        new_state, _ = dispatch(state, "_theater_init", (), id=params[0])
        return (new_state,)


class MessageServerClientExport:
    """``theater:simple/message-server-client``."""

    def handle_send(self, state: bytes | None, params: tuple[bytes]) -> tuple[bytes | None]:
        new_state, _ = dispatch(state, "on_send", (params[0],))
        return (new_state,)

    def handle_request(self, state: bytes | None, params: tuple[str, bytes]) -> tuple[bytes | None, tuple[Any]]:
        request_id, message = params
        new_state, reply = dispatch(state, "on_request", (message,), _reply, request_id=request_id)
        return (new_state, (reply,))

    def handle_channel_open(self, state: bytes | None, params: tuple[str, bytes]) -> tuple[bytes | None, tuple[Any]]:
        new_state, answer = dispatch(state, "on_channel_open", params, _channel_answer)
        return (new_state, (answer,))

    def handle_channel_message(self, state: bytes | None, params: tuple[str, bytes]) -> tuple[bytes | None]:
        new_state, _ = dispatch(state, "on_channel_message", params)
        return (new_state,)

    def handle_channel_close(self, state: bytes | None, params: tuple[str]) -> tuple[bytes | None]:
        new_state, _ = dispatch(state, "on_channel_close", params)
        return (new_state,)


class SupervisorHandlersExport:
    """``theater:simple/supervisor-handlers``."""

    def handle_child_error(self, state: bytes | None, params: tuple[str, Any]) -> tuple[bytes | None]:
        child_id, error = params
        new_state, _ = dispatch(state, "on_child_error", lambda: (child_id, _child_error(error)))
        return (new_state,)

    def handle_child_exit(self, state: bytes | None, params: tuple[str, bytes | None]) -> tuple[bytes | None]:
        new_state, _ = dispatch(state, "on_child_exit", params)
        return (new_state,)


class ProcessHandlersExport:
    """``theater:simple/process-handlers``."""

    def handle_stdout(self, state: bytes | None, params: tuple[int, bytes]) -> tuple[bytes | None]:
        new_state, _ = dispatch(state, "on_process_stdout", params)
        return (new_state,)

    def handle_stderr(self, state: bytes | None, params: tuple[int, bytes]) -> tuple[bytes | None]:
        new_state, _ = dispatch(state, "on_process_stderr", params)
        return (new_state,)

    def handle_exit(self, state: bytes | None, params: tuple[int, int]) -> tuple[bytes | None]:
        new_state, _ = dispatch(state, "on_process_exit", params)
        return (new_state,)
def _http_request(request: Any) -> tuple[web.Request]:
    return (web.Request(request.method, request.uri, [(k, v) for k, v in request.headers], request.body or b""),)


def _http_response(value: Any) -> Any:
    if not isinstance(value, web.Response):
        raise TypeError(f"a route must give a theater_sdk.Response, got {type(value).__name__}")
    return BINDINGS["http_types"].HttpResponse(status=value.status, headers=value.headers, body=value.body or None)


class HttpHandlersExport:
    """``theater:simple/http-handlers``: requests go to the actor's routes (``@route``), through its ``@middleware``
    methods first; websocket events go to ``on_ws_connect``, ``on_ws_message`` and ``on_ws_disconnect``."""

    def handle_request(self, state: bytes | None, params: tuple[int, Any]) -> tuple[bytes | None, tuple[Any]]:
        _, request = params
        new_state, response = dispatch(state, "_theater_http", lambda: _http_request(request), _http_response)
        return (new_state, (response,))

    def handle_middleware(self, state: bytes | None, params: tuple[int, Any]) -> tuple[bytes | None, tuple[Any]]:
        _, request = params

        def result(passed: "web.Request | None") -> Any:
            types = BINDINGS["http_types"]
            if passed is None:
                return types.MiddlewareResult(proceed=False, request=request)
            out = types.HttpRequest(method=passed.method, uri=passed.uri, headers=list(passed.headers),
                                    body=passed.body or None)
            return types.MiddlewareResult(proceed=True, request=out)

        new_state, outcome = dispatch(state, "_theater_middleware", lambda: _http_request(request), result)
        return (new_state, (outcome,))

    def handle_websocket_connect(self, state: bytes | None, params: tuple[Any, ...]) -> tuple[bytes | None]:
        _, connection, path, query = params
        new_state, _ = dispatch(state, "on_ws_connect", (connection, path, query))
        return (new_state,)

    def handle_websocket_message(self, state: bytes | None, params: tuple[Any, ...]) -> tuple[bytes | None, Any]:
        _, connection, message = params
        new_state, out = dispatch(state, "on_ws_message", lambda: (connection, web.ws_payload(message)),
                                  web.ws_messages)
        return (new_state, (out,))

    def handle_websocket_disconnect(self, state: bytes | None, params: tuple[Any, ...]) -> tuple[bytes | None]:
        _, connection = params
        new_state, _ = dispatch(state, "on_ws_disconnect", (connection,))
        return (new_state,)
