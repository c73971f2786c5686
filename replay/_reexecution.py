"""What every re-execution of a recorded chain shares: replay and verify (``replay.replayer``), live replay
(``replay.live``), upgrade checks (``replay.upgrade``) and what-if runs (``replay.whatif``).

- How a call's outcome is put in its recorded form (``outcome_event``, ``outcome_fields``) and compared with the record
  (``same``, ``state_digest``).
- What is read back from the blob store: the component (``load_component``) and a state (``state_blob``), each
  missing one a ``RecordIncomplete``.
- The wall-clock bounds: the engine's epoch ticks while guest code runs (``epoch_ticks``), the per-call deadline
  (``call_limits``) and the bound of a whole run (``Overall``).

Package-private: the modules above import these names; nothing outside ``replay`` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import blake3
import cbor2

from replay.boundary import CallResult
from replay.engine import EPOCH_TICK_S, Engine
from replay.errors import FaultKind, GuestFault, RecordIncomplete, ReplayTimeout
from replay.schema import WASM_ERR_ANSWER, WASM_ERROR, WASM_RESULT, Limits
from store import Event, Store
from store.errors import NotFoundError

# What wasmtime-py and the value converters raise for a recorded value that does not fit the WIT type it is
# lowered to (the record is untrusted: its params may be anything CBOR holds).
UNFIT_VALUE = (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError)


def same(a: Any, b: Any) -> bool:
    """True when two recorded values are equal, or encode to the same canonical CBOR."""
    return a == b or cbor2.dumps(a, canonical=True) == cbor2.dumps(b, canonical=True)


def state_digest(state: bytes | None) -> bytes | None:
    """The digest a state is recorded by (None for no state)."""
    return None if state is None else blake3.blake3(state).digest()


def outcome_event(result: CallResult | GuestFault) -> str:
    """The type of the event that records ``result``: ``wasm/result``, ``wasm/err-answer`` or ``wasm/error``."""
    if isinstance(result, CallResult):
        return WASM_RESULT
    return WASM_ERR_ANSWER if result.answered else WASM_ERROR


def outcome_fields(result: CallResult | GuestFault) -> dict[str, Any]:
    """The fields of ``result`` as its outcome event records them (with the fuel it consumed)."""
    if isinstance(result, CallResult):
        return {"state": state_digest(result.state), "output": result.output, "fuel": result.fuel}
    if result.answered:
        return {"detail": result.detail, "fuel": result.fuel}
    recorded: dict[str, Any] = {"kind": str(result.kind), "fuel": result.fuel}
    if result.kind == FaultKind.ERR:
        recorded["detail"] = result.detail
    return recorded


def load_component(engine: Engine, store: Store, digest: bytes) -> Any:
    """The compiled component with this blob hash.

    Raises:
        RecordIncomplete: it is not in the blob store.
    """
    try:
        return engine.load(store, digest)
    except NotFoundError:
        raise RecordIncomplete(f"component {digest.hex()} is not in the blob store") from None


def state_blob(store: Store, digest: bytes | None) -> bytes | None:
    """The state recorded by ``digest`` (None for none).

    Raises:
        RecordIncomplete: it is not in the blob store.
    """
    if digest is None:
        return None
    try:
        return store.blobs.get(digest)
    except NotFoundError:
        raise RecordIncomplete(f"state blob {digest.hex()} is not in the blob store") from None


def call_limits(limits: Limits, seconds: float) -> Limits:
    """``limits`` with the deadline set to a call's wall-clock bound (a recorded deadline is not used: a recorded
    ``deadline`` failure is replayed as its fuel)."""
    return replace(limits, deadline_ms=max(1, int(seconds * 1000)))


class Overall:
    """The wall-clock bound of a whole run (``ReplayLimits.timeout_s``), started when it is made."""

    def __init__(self, timeout_s: float | None) -> None:
        self.seconds = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def left(self, event: Event) -> float | None:
        """Seconds left before the call at ``event`` (None: no bound).

        Raises:
            ReplayTimeout: none are left.
        """
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ReplayTimeout(seq=event.seq, export=str(event.data.get("export", event.type)),
                                seconds=self.seconds or 0.0, what="replay")
        return left


@contextmanager
def epoch_ticks(engine: Engine) -> Iterator[None]:
    """Advance the engine's epoch every tick while a run goes, so the per-call wall-clock bound can fire."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(EPOCH_TICK_S):
            engine.wasmtime.increment_epoch()

    ticker = threading.Thread(target=tick, name="theater-replay-epoch", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
