"""The check every runtime-level suite runs after its tests: each chain verifies and replays from genesis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from replay import Replayer
from store import Store, verify_store


def chain_problems(store: Store) -> list[str]:
    """Every reason a chain of ``store`` fails integrity verification or replay from genesis (empty when none)."""
    problems = [problem.describe() for problem in verify_store(store).problems]
    replayer = Replayer(store)
    for actor, _ in store.log.actors():
        report = replayer.replay(actor)
        if not report.ok:
            problems.append(f"replay of actor {actor}: {report.divergence}")
    return problems


class CommitWaiter:
    """Wakes waiters after every commit of a store, so a test waits on the record itself, never on a sleep."""

    def __init__(self, store: Store, timeout: float) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        store.add_commit_listener(self._notify)

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def until(self, predicate: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        """Wait until ``predicate()`` is true (checked after each commit) and return its value."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._cond:
            while not (value := predicate()):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"gave up after {limit} s waiting for {what}")
                self._cond.wait(left)
        return value
