"""What-if: history re-executed with chosen host results replaced, compared with the record, writing nothing."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from replay import Replayer, ReplayLimits, ReplayTimeout
from replay.boundary import Boundary
from replay.engine import Engine
from replay.whatif import NoRecordedAnswer, run
from store import Store
from store.errors import InvalidInputError
from tests.components import wat
from tests.replay._lineage import le64, project, verifies
from theater.runtime import Theater

RANGE = "theater:simple/random/random-range"
SEND = "theater:simple/message-server-client.handle-send"
# "r" sets the state to a random number in [0, 1000); any other message adds one to it.
DICE = wat.actor_wat(send=wat.match_msg({b"r": wat.random_range(0, 1000)}, default=wat.count()),
                     request=wat.count())
MESSAGES = [b"+", b"r", b"+", b"+"]


def _recorded(tmp_path: Path) -> tuple[Path, uuid.UUID]:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = theater.start(project(tmp_path / "dice", DICE, ("message-server", "random")))
        for message in MESSAGES:
            theater.send(actor, message)
    return tmp_path / "home", uuid.UUID(actor)


def _home_digest(home: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(home.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(home)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class _ByHand:
    """A tape that calls through, to run the guest by hand with chosen host answers."""

    replaying = False

    def host_call(self, name: str, params: list[Any], call: Any) -> Any:
        return call()

    def begin_call(self, export: str, state: bytes | None, params: Any) -> None:
        pass

    def end_call(self, export: str, result: Any) -> None:
        pass


def _by_hand(store: Store, actor: uuid.UUID, value: int | dict[str, Any]) -> bytes | None:
    """Run the recorded component by hand through the same messages, random-range answering ``value`` (a number,
    or a whole result)."""
    answer = value if isinstance(value, dict) else {"ok": value}
    engine = Engine()
    component = engine.load(store, store.log.at(actor, 0).data["component"])
    def unused(*args: Any) -> Any:
        raise AssertionError("the guest called a host function the recording did not")

    host = {"theater:simple/random": {"random-range": lambda low, high: answer, "random-bytes": unused,
                                      "random-float": unused, "generate-uuid": unused},
            "theater:simple/runtime": {name: unused for name in ("log", "get-state", "get-chain", "shutdown")}}
    instance = Boundary(engine, component, _ByHand(), host)
    state = instance.call("theater:simple/actor.init", None, [str(actor)]).state
    for message in MESSAGES:
        state = instance.call(SEND, state, [message]).state
    engine.close()
    return state


def _random_seq(store: Store, actor: uuid.UUID) -> int:
    return next(e.seq for e in store.log.events(actor) if e.type == RANGE)


def test_whatif_with_another_random_number_changes_the_state_as_running_the_guest_by_hand(tmp_path: Path) -> None:
    home, actor = _recorded(tmp_path)
    with Store(home / "store") as store:
        seq = _random_seq(store, actor)
        recorded = store.log.at(actor, seq).data["result"]["ok"]
        chosen = (recorded + 123) % 1000
        result = run(Replayer(store), actor, overrides={seq: {"ok": chosen}})
        assert result.stopped is None
        assert result.state == le64(chosen + 2) == _by_hand(store, actor, chosen)
        assert result.recorded_state == le64(recorded + 2)
        departure = result.departure
        assert departure is not None and departure.seq == seq - 1  # the call that made the random call
        assert departure.recorded_state == le64(recorded) and departure.whatif_state == le64(chosen)
        assert [c.same for c in result.calls] == [True, True, False, False, False]


def test_whatif_with_a_failed_random_call_changes_the_state_as_running_the_guest_by_hand(tmp_path: Path) -> None:
    home, actor = _recorded(tmp_path)
    with Store(home / "store") as store:
        seq = _random_seq(store, actor)
        failed = {"err": "no entropy"}
        result = run(Replayer(store), actor, overrides={seq: failed})
        assert result.stopped is None
        assert result.calls[2].whatif_state == wat.ERR_MARKER + b"no entropy"
        assert result.state == _by_hand(store, actor, failed)


def test_whatif_shows_recorded_host_calls_the_guest_no_longer_makes(tmp_path: Path) -> None:
    import copy

    from tests.replay._lineage import rewrite

    home, actor = _recorded(tmp_path)
    with Store(home / "store") as store:
        seq = _random_seq(store, actor)

        def one_more(drafts: list) -> None:  # the record holds a second random call in the same call
            drafts.insert(seq + 1, copy.deepcopy(drafts[seq]))

        forged = rewrite(store, actor, one_more)
        result = run(Replayer(store), forged)
        departure = result.departure
        assert departure is not None and departure.seq == seq - 1
        assert departure.whatif["skipped_host_calls"] == [seq + 1]
        assert departure.whatif_state == departure.recorded_state  # the same state: only the host calls differ


def test_whatif_without_overrides_matches_the_record(tmp_path: Path) -> None:
    home, actor = _recorded(tmp_path)
    with Store(home / "store") as store:
        result = run(Replayer(store), actor)
        assert result.stopped is None and result.departure is None
        assert result.state == result.recorded_state


def test_whatif_past_the_replayers_overall_bound_is_stopped(tmp_path: Path) -> None:
    """A what-if over the API is bounded in wall-clock time as verify is: a bound already spent stops it at once."""
    home, actor = _recorded(tmp_path)
    with Store(home / "store") as store:
        with pytest.raises(ReplayTimeout) as stopped:
            run(Replayer(store, limits=ReplayLimits(timeout_s=0.0)), actor)
    assert stopped.value.what == "replay"
    assert stopped.value.seq == next(e.seq for e in _events(home, actor) if e.type == "wasm/call")


def _events(home: Path, actor: uuid.UUID) -> list[Any]:
    with Store(home / "store", readonly=True) as store:
        return list(store.log.events(actor))


def test_whatif_never_writes_to_the_home(tmp_path: Path) -> None:
    home, actor = _recorded(tmp_path)
    with Store(home / "store") as store:  # opened once so the store's own files exist before the snapshot
        seq = _random_seq(store, actor)
    before = _home_digest(home)
    with Store(home / "store") as store:
        run(Replayer(store), actor, overrides={seq: {"ok": 7}})
        run(Replayer(store), actor, overrides={seq: {"err": "no entropy"}})
    assert _home_digest(home) == before


def test_whatif_override_of_a_seq_that_is_not_a_host_call_is_refused(tmp_path: Path) -> None:
    home, actor = _recorded(tmp_path)
    with Store(home / "store") as store:
        call = next(e.seq for e in store.log.events(actor) if e.type == "wasm/call")
        with pytest.raises(InvalidInputError, match=f"event {call} is 'wasm/call', not a host call"):
            run(Replayer(store), actor, overrides={call: {"ok": 1}})
        with pytest.raises(InvalidInputError, match="within events 0.."):
            run(Replayer(store), actor, overrides={10_000: {"ok": 1}})


def test_whatif_override_that_does_not_fit_the_import_is_refused_clearly(tmp_path: Path) -> None:
    home, actor = _recorded(tmp_path)
    with Store(home / "store") as store:
        seq = _random_seq(store, actor)
        with pytest.raises(InvalidInputError, match=f"override {seq}.*{RANGE}: the result.ok must be an integer"):
            run(Replayer(store), actor, overrides={seq: {"ok": "not a number"}})
        with pytest.raises(InvalidInputError, match="one-key map naming one of ok, err"):
            run(Replayer(store), actor, overrides={seq: 5})


def test_whatif_stops_at_the_first_host_call_the_record_cannot_answer(tmp_path: Path) -> None:
    # The actor logs its state (ASCII digits and NULs: a random number in [48, 58)): another state makes another
    # log call, which the record cannot answer.
    talker = wat.actor_wat(send=wat.match_msg({b"r": wat.random_range(48, 58)},
                                              default=wat.seq(wat.log(wat.STATE), wat.count())))
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = theater.start(project(tmp_path / "talker", talker, ("message-server", "random")))
        for message in (b"r", b"+", b"+"):
            theater.send(actor, message)
    with Store(tmp_path / "home" / "store") as store:
        key = uuid.UUID(actor)
        seq = _random_seq(store, key)
        recorded = store.log.at(key, seq).data["result"]["ok"]
        result = run(Replayer(store), key, overrides={seq: {"ok": (recorded - 48 + 1) % 10 + 48}})
        assert isinstance(result.stopped, NoRecordedAnswer)
        assert result.stopped.name == "theater:simple/runtime/log"
        assert "has no answer for it" in str(result.stopped)
        assert result.last_seq < store.log.head(key).seq


def test_whatif_fork_starts_a_verifiable_actor_from_the_whatif_state(tmp_path: Path) -> None:
    home, actor = _recorded(tmp_path)
    with Theater(home, durability="buffered") as theater:
        seq = _random_seq(theater.store, actor)
        head = theater.store.log.head(actor)
        fork = theater.fork(head.hash, overrides={seq: {"ok": 500}})
        assert theater.state(fork) == le64(502)
        assert theater.request(fork, b"+") == le64(503)
        assert verifies(theater.store, fork).ok
        assert theater.store.log.at(uuid.UUID(fork), 0).data["fork"]["overrides"] == [[seq, {"ok": 500}]]
