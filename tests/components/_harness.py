"""A minimal wasmtime-py host for the kit's own tests (not Theater's runtime).

``FakeHost`` implements the ``theater:simple`` import interfaces in Python and
records every call; ``Guest`` instantiates one component in its own store and
calls its exports with the ``theater:simple`` signatures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from wasmtime import Config, Engine, Store
from wasmtime.component import Component, Linker, Variant

from .wat import ACTOR, INTERFACES, MESSAGE_SERVER_CLIENT

ALL_INTERFACES = tuple(INTERFACES)


def make_engine(**options: Any) -> Engine:
    cfg = Config()
    for key, value in options.items():
        setattr(cfg, key, value)
    return Engine(cfg)


ENGINE = make_engine()
LIMITED_ENGINE = make_engine(consume_fuel=True, epoch_interruption=True)


@lru_cache(maxsize=None)
def _compile(engine: Engine, text: str) -> Component:
    return Component(engine, text)


def compile_wat(text: str, engine: Engine = ENGINE) -> Component:
    return _compile(engine, text)


def _defaults() -> dict[str, Any]:
    return {
        # runtime
        "log": None,
        "get-state": None,
        "get-chain": [],  # list of Record(hash, parent_hash, event_type, data, timestamp)
        "shutdown": None,
        # timing
        "now": 1_700_000_000_123,
        "sleep": None,
        "deadline": None,
        # random
        "random-bytes": lambda n: bytes(range(n)),
        "random-range": lambda lo, hi: lo,
        "random-float": 0.25,
        # result<string, string> is a *tagged* Variant in wasmtime-py
        "generate-uuid": Variant("ok", "00000000-0000-4000-8000-000000000000"),
        # message-server-host
        "send": None,
        "request": lambda actor, msg: b"reply:" + msg,
        "open-channel": Variant("ok", "chan-1"),
        "send-on-channel": None,
        "close-channel": None,
        "list-outstanding-requests": [],
        "respond-to-request": None,
        "cancel-request": None,
    }


class FakeHost:
    """Python implementations of the imports.

    ``replies[name]`` is the value returned by import ``name`` (or a callable
    taking the import's arguments).  Untagged results: return the ok value or
    an error ``str`` (``None`` is ``ok`` for ``result<_, string>``);
    ``result<string, string>`` needs ``Variant("ok"|"err", str)``.
    """

    def __init__(self, **replies: Any) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.replies = _defaults()
        self.replies.update({k.replace("_", "-"): v for k, v in replies.items()})

    def called(self, name: str) -> list[tuple]:
        return [args for fn, args in self.calls if fn == name]

    def _impl(self, name: str) -> Callable[..., Any]:
        def impl(_store: Any, *args: Any) -> Any:
            self.calls.append((name, args))
            reply = self.replies[name]
            return reply(*args) if callable(reply) else reply

        return impl

    def linker(self, engine: Engine, interfaces: Iterable[str] = ALL_INTERFACES) -> Linker:
        linker = Linker(engine)
        with linker.root() as root:
            for iface in interfaces:
                with root.add_instance(iface) as inst:
                    for fn in INTERFACES[iface]:
                        inst.add_func(fn, self._impl(fn))
        return linker


class Guest:
    """One component instance in its own store."""

    def __init__(
        self,
        text: str,
        host: FakeHost | None = None,
        *,
        engine: Engine = ENGINE,
        interfaces: Iterable[str] = ALL_INTERFACES,
        fuel: int | None = None,
        epoch_deadline: int | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.host = host or FakeHost()
        self.engine = engine
        self.component = compile_wat(text, engine)
        self.store = Store(engine)
        if fuel is not None:
            self.store.set_fuel(fuel)
        if epoch_deadline is not None:
            self.store.set_epoch_deadline(epoch_deadline)
        if memory_limit is not None:
            self.store.set_limits(memory_size=memory_limit)
        self.instance = self.host.linker(engine, interfaces).instantiate(self.store, self.component)

    def func(self, iface: str, name: str):
        store, inst = self.store, self.instance
        parent = inst.get_export_index(store, iface)
        assert parent is not None, iface
        index = inst.get_export_index(store, name, parent)
        assert index is not None, name
        return inst.get_func(store, index)

    def _call(self, iface: str, name: str, *args: Any) -> Any:
        return self.func(iface, name)(self.store, *args)

    # Each returns what wasmtime-py returns: the ok tuple, or the err string.
    def init(self, state: bytes | None = None, actor_id: str = "actor-1") -> Any:
        return self._call(ACTOR, "init", state, (actor_id,))

    def send(self, state: bytes | None, msg: bytes) -> Any:
        return self._call(MESSAGE_SERVER_CLIENT, "handle-send", state, (msg,))

    def request(self, state: bytes | None, msg: bytes, request_id: str = "req-1") -> Any:
        return self._call(MESSAGE_SERVER_CLIENT, "handle-request", state, (request_id, msg))

    def channel_open(self, state: bytes | None, msg: bytes, channel_id: str = "chan-1") -> Any:
        return self._call(MESSAGE_SERVER_CLIENT, "handle-channel-open", state, (channel_id, msg))

    def channel_message(self, state: bytes | None, msg: bytes, channel_id: str = "chan-1") -> Any:
        return self._call(MESSAGE_SERVER_CLIENT, "handle-channel-message", state, (channel_id, msg))

    def channel_close(self, state: bytes | None, channel_id: str = "chan-1") -> Any:
        return self._call(MESSAGE_SERVER_CLIENT, "handle-channel-close", state, (channel_id,))
