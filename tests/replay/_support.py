"""Helpers shared by the replay suites: recorded names, little-endian counters, state digests, workloads."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import blake3

from replay import ContinuityBreak, Replayer, ReplayReport, _wasmtime
from replay.bundle import opened_bundle
from store import verify_chain
from tests._forge import Forged

NOW = "theater:simple/timing/now"
CLOCK_GRANTS = ("message-server", "timing")


def le64(n: int) -> bytes:
    return n.to_bytes(8, "little")


def digest(state: bytes) -> bytes:
    return blake3.blake3(state).digest()


def sends(count: int, message: bytes = b"tick") -> Callable[[Any, str], None]:
    """A workload that sends ``message`` to the actor ``count`` times."""

    def workload(theater: Any, actor: str) -> None:
        for _ in range(count):
            theater.send(actor, message)

    return workload


def verified(forged: Forged) -> ReplayReport:
    """Verify a forged bundle as ``theater verify FILE`` does: integrity first (it must hold), then replay."""
    with opened_bundle(forged.bundle) as (store, actor, bundle):
        integrity = verify_chain(store, actor)
        assert integrity.ok, integrity.problem  # the forgery is a valid chain: only replay can tell
        return Replayer(store).replay(actor, from_seq=bundle["from_seq"])


def only_break(report: ReplayReport) -> ContinuityBreak:
    assert isinstance(report.divergence, ContinuityBreak), report.divergence
    return report.divergence


class Slot:
    """One ``wasmtime_component_val_t``, zeroed (a plain bool: owns nothing)."""

    def __init__(self) -> None:
        self.val = _wasmtime._Val()
        self.at = ctypes.addressof(self.val)

    def raw(self) -> bytes:
        return ctypes.string_at(self.at, _wasmtime._VAL_STRIDE)

    def head(self) -> tuple[int, Any]:
        """The kind, and the case: a result's is_ok, a variant's case name (the box pointers differ)."""
        kind = self.val.kind
        if kind == _wasmtime._KINDS["RESULT"]:
            return kind, bool(self.val.of.result.is_ok)
        if kind == _wasmtime._KINDS["VARIANT"]:
            name = self.val.of.variant.discriminant
            return kind, ctypes.string_at(name.data, name.size)
        return kind, None
