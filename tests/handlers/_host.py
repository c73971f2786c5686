"""A stand-in for ``theater.host.ActorHost`` for the world-reaching handlers: just what they use of it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class FakeActor:
    """An actor a handler serves: its id, source, the home's store, a stop flag, and (for ``process``) calls
    into its exports, kept in ``calls`` in the order they were made, each on one delivery thread like the runtime's."""

    def __init__(self, store: Any = None, exports: tuple[str, ...] = ()) -> None:
        self.id = uuid.uuid4()
        self.name = "fake"
        self.source = "fake.toml"
        self.store = store if store is not None else _NoChain()
        self.stop_requested = threading.Event()
        self.exports = exports
        self.calls: list[tuple[str, Any]] = []
        self.changed = threading.Condition()
        self._ops = threading.Lock()

    def has_export(self, export: str) -> bool:
        return export in self.exports

    def call(self, export: str, params: list[Any]) -> None:
        with self.changed:
            self.calls.append((export, list(params)))
            self.changed.notify_all()

    def control(self, op: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._ops:  # one operation at a time, as on the actor's thread
            future.set_result(op())
        return future

    def wait_calls(self, predicate: Callable[[list[tuple[str, Any]]], bool], timeout: float = 30.0) -> list[Any]:
        """Wait until ``predicate(calls)`` holds (woken by each call; no sleeping)."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.calls), timeout):
                raise AssertionError(f"calls never matched; got {self.calls!r}")
            return list(self.calls)


class _NoChain:
    """A store whose chains are all empty (for handlers that read their actor's chain)."""

    class log:  # stands in for Store.log
        @staticmethod
        def events(actor: Any) -> list[Any]:
            return []
