"""The check every runtime-level suite runs after its tests: each chain verifies and replays from genesis."""

from __future__ import annotations

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
