"""Helpers of the fork, revert and what-if suites: a home with a small real actor, chains rewritten in place."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from replay import Replayer, ReplayReport
from store import EMPTY, Head, Store, verify_chain
from tests._forge import Draft, drafts_of
from theater.porcelain import verify_actor


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def project(root: Path, wat_text: str, handlers: Iterable[str] = ("message-server",), name: str = "counter") -> Path:
    """A manifest and its WAT component under ``root``; the manifest's path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "actor.wat").write_text(wat_text)
    grants = "".join(f'\n[[handlers]]\ntype = "{h}"\n' for h in handlers)
    (root / "actor.toml").write_text(f'name = "{name}"\ncomponent = "actor.wat"\n{grants}')
    return root / "actor.toml"


def verifies(store: Store, actor: uuid.UUID | str) -> ReplayReport:
    """Verify as ``theater verify`` does; the replay report (integrity must hold)."""
    report = verify_actor(store, uuid.UUID(str(actor)))
    assert report.integrity.ok, report.integrity.problem
    assert report.replay is not None
    return report.replay


def rewrite(store: Store, actor: uuid.UUID, edit: Callable[[list[Draft]], Any], *,
            new_actor: uuid.UUID | None = None) -> uuid.UUID:
    """Forge: the actor's events edited by ``edit`` (in place) and written as a valid chain of ``new_actor`` (a
    fresh id by default) in the same store, every hash and link right; the forged actor's id.

    A revert that named an event of the original chain is pointed at the forged chain's event at that seq, as a
    forger would (unless the edit pointed it elsewhere), so only what the edit changed can give the forgery away.
    """
    original = [e.hash for e in store.log.events(actor)]
    drafts = drafts_of(store, actor)
    edit(drafts)
    target = new_actor or uuid.uuid4()
    head = EMPTY
    written: list[bytes] = []
    for draft in drafts:
        data = copy.deepcopy(draft.data)
        if draft.type == "actor/created" and isinstance(data, dict):
            data["id"] = str(target)
        if draft.type == "actor/revert" and isinstance(data, dict) and data.get("event") in original:
            to_seq = data.get("to_seq")
            if isinstance(to_seq, int) and 0 <= to_seq < len(written):
                data["event"] = written[to_seq]
        event = store.log.append(target, draft.type, data, expected=head, timestamp_ms=draft.ts)
        written.append(event.hash)
        head = Head(event.seq, event.hash)
    assert verify_chain(store, target).ok
    return target


def replay_report(store: Store, actor: uuid.UUID) -> ReplayReport:
    return Replayer(store).replay(actor)
