"""Upgrade checks: recorded chains re-executed against new builds of their component, and classified."""

from __future__ import annotations

import pytest

from replay.upgrade import EXIT_ACCEPTED, EXIT_DIFFERENT, EXIT_FAILS, UpgradeChecker, Verdict, exit_code
from store import Store
from tests.components import wat

GRANTS = ("message-server", "random")
RANDOM = "theater:simple/random/random-bytes"


def v1() -> str:
    """Appends every message to its state; a request draws 8 random bytes, keeps and answers them."""
    return wat.actor_wat(send=wat.append_msg(b","), request=wat.random_bytes(8))


def compatible() -> str:
    """Another build that behaves the same on every recorded call (only an unused handler differs)."""
    return wat.actor_wat(send=wat.append_msg(b","), request=wat.random_bytes(8),
                         channel_close=wat.set_state(b"closed"))


def state_only() -> str:
    """Encodes its state differently (another separator) and answers the same."""
    return wat.actor_wat(send=wat.append_msg(b";"), request=wat.random_bytes(8))


def new_answer() -> str:
    """Makes the same host call but answers something else."""
    return wat.actor_wat(send=wat.append_msg(b","), request=wat.seq(wat.random_bytes(8), wat.respond(b"changed")))


def traps() -> str:
    return wat.actor_wat(send=wat.append_msg(b","), request=wat.trap())


def other_host_call() -> str:
    """Asks the host for 16 random bytes where the record has 8."""
    return wat.actor_wat(send=wat.append_msg(b","), request=wat.random_bytes(16))


def workload(theater, actor):
    theater.send(actor, b"a")
    theater.send(actor, b"b")
    theater.request(actor, b"draw")
    theater.send(actor, b"c")


@pytest.fixture
def recorded(record):
    """Two recordings of v1 (different random draws)."""
    return [record(v1(), workload, GRANTS) for _ in range(2)]


def check_all(recordings, text: str):
    checker = UpgradeChecker(text.encode())
    results = []
    for recording in recordings:
        store = Store(recording.store_path, readonly=True)
        try:
            results.append(checker.check(store, recording.actor))
        finally:
            store.close()
    return results


def test_the_same_build_is_identical(recorded):
    results = check_all(recorded, v1())
    assert [r.verdict for r in results] == [Verdict.IDENTICAL] * 2
    assert all(r.calls == 5 and r.host_calls == 1 and r.difference is None for r in results)


def test_a_compatible_build_is_identical(recorded):
    results = check_all(recorded, compatible())
    assert [r.verdict for r in results] == [Verdict.IDENTICAL] * 2
    assert results[0].new_component != results[0].old_component


def test_a_new_state_encoding_is_state_only(recorded):
    results = check_all(recorded, state_only())
    assert [r.verdict for r in results] == [Verdict.STATE_ONLY] * 2
    difference = results[0].difference
    assert difference.what == "state" and difference.event == "wasm/result"
    assert difference.seq == 5  # created, instantiate, init call and result, the first send, its result
    assert results[0].calls == 5  # the whole chain was gone through


def test_a_changed_answer_is_different_and_decoded(recorded):
    (result, _) = check_all(recorded, new_answer())
    assert result.verdict == Verdict.DIFFERENT
    difference = result.difference
    assert difference.event == "wasm/result" and difference.what.startswith("result of")
    assert difference.recorded["output"] != difference.new["output"]
    assert difference.new["output"] == [[{"some": b"changed"}]]


def test_a_different_host_call_is_different(recorded):
    (result, _) = check_all(recorded, other_host_call())
    assert result.verdict == Verdict.DIFFERENT
    assert result.difference.event == RANDOM
    assert result.difference.recorded == [8] and result.difference.new == [16]


def test_a_trap_fails(recorded):
    (result, _) = check_all(recorded, traps())
    assert result.verdict == Verdict.FAILS
    assert "trap" in result.detail
    assert result.difference.event == RANDOM  # where the record goes on with a host call, the new build trapped


def test_a_missing_export_fails(record):
    recording = record(v1(), workload, GRANTS)
    (result,) = check_all([recording], wat.actor_wat(message_server=False))
    assert result.verdict == Verdict.FAILS


def test_a_new_build_that_is_not_a_component_fails(recorded):
    (result, _) = check_all(recorded, "(component (core module (func $f (unreachable))")
    assert result.verdict == Verdict.FAILS and "not a usable component" in result.detail


def test_exit_codes_differ_by_worst_refused_verdict(recorded):
    codes = [exit_code(check_all(recorded, text), frozenset({Verdict.IDENTICAL}))
             for text in (compatible(), state_only(), new_answer(), traps())]
    assert codes == [EXIT_ACCEPTED, EXIT_DIFFERENT, EXIT_DIFFERENT, EXIT_FAILS]
    accepting = frozenset({Verdict.IDENTICAL, Verdict.STATE_ONLY})
    assert exit_code(check_all(recorded, state_only()), accepting) == EXIT_ACCEPTED


def test_a_chain_that_breaks_continuity_is_unchecked(record, open_store, rewrite):
    recording = record(v1(), workload, GRANTS)
    store = open_store(recording)
    call = next(e for e in store.log.events(recording.actor) if e.type == "wasm/call" and e.seq > 4)
    rewrite(store, recording.actor, call.seq, lambda data: {**data, "state": b"\x01" * 32})
    result = UpgradeChecker(v1().encode()).check(store, recording.actor)
    assert result.verdict == Verdict.UNCHECKED and "continuity" in result.detail


@pytest.mark.parametrize(("forged_result", "verdict"), [
    ({"ok": b"\0" * 8}, Verdict.DIFFERENT),  # a well-formed other answer: the guest answers it, not as recorded
    ("not a result", Verdict.UNCHECKED),  # malformed: the record is at fault, not the build
])
def test_a_forged_bundle_with_valid_hashes_is_never_passed(record, open_store, forged_from, forged_result, verdict):
    """An attacker rewrites a host result and re-hashes the chain: integrity holds, but the recorded build itself
    no longer reproduces the record, so no build is called identical to it."""
    from theater.porcelain.upgrade import check_bundle

    recording = record(v1(), workload, GRANTS)

    def edit(drafts):
        next(d for d in drafts if d.type == RANDOM).data["result"] = forged_result

    forged = forged_from(open_store(recording), recording.actor, edit)
    result = check_bundle(UpgradeChecker(v1().encode()), forged.bundle)
    assert result.verdict == verdict, (result.detail, result.difference)
