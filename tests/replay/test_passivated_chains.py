"""Chains with passivations: an ``actor/passivated`` drops the instance, a ``wasm/instantiate`` with reason
``activate`` brings it back from the state the passivation held. Honest chains verify and replay bit-for-bit;
forged passivations and activations (a wrong state, an activation out of nowhere) are caught by continuity.
"""

from __future__ import annotations


import pytest

from replay import Replayer, state_at
from tests._forge import Draft
from tests.components import wat
from tests.replay._support import only_break, verified, digest, le64

PASSIVATED = "actor/passivated"



def passivating(theater, actor: str) -> None:
    """Two sends, a passivation, a send (activates), a passivation, a send: state 1, 2, 3 at the end."""
    theater.send(actor, b"tick")
    theater.send(actor, b"tick")
    assert theater.passivate(actor)
    theater.send(actor, b"tick")
    assert theater.passivate(actor)
    theater.send(actor, b"tick")


@pytest.fixture
def passivated(record, open_store):
    recording = record(wat.counter_actor(), passivating)
    return open_store(recording), recording.actor



def index_of(drafts: list[Draft], type_: str, nth: int = 0, **match) -> int:
    found = [i for i, d in enumerate(drafts) if d.type == type_ and all(d.data.get(k) == v for k, v in match.items())]
    return found[nth]


def test_a_chain_with_passivations_replays_bit_for_bit(passivated):
    store, actor = passivated
    types = [e.type for e in store.log.events(actor)]
    assert types.count(PASSIVATED) == 2
    reasons = [e.data["reason"] for e in store.log.events(actor) if e.type == "wasm/instantiate"]
    assert reasons == ["start", "activate", "activate"]
    report = Replayer(store).replay(actor)
    assert report.ok, report.divergence


def test_state_at_a_passivation_is_the_state_it_holds(passivated):
    store, actor = passivated
    first, second = [e for e in store.log.events(actor) if e.type == PASSIVATED]
    assert state_at(store, actor, first.seq) == le64(2)
    assert state_at(store, actor, second.seq) == le64(3)
    assert state_at(store, actor) == le64(4)


def test_replay_from_an_activation_verifies(passivated):
    store, actor = passivated
    activation = [e for e in store.log.events(actor) if e.data.get("reason") == "activate"][-1]
    report = Replayer(store).replay(actor, from_seq=activation.seq)
    assert report.ok, report.divergence


def test_an_honest_passivated_chain_forged_unchanged_verifies(passivated, forged_from):
    store, actor = passivated
    report = verified(forged_from(store, actor, lambda drafts: None))
    assert report.ok, report.divergence


def test_verify_detects_an_activation_from_a_forged_state(passivated, forged_from):
    store, actor = passivated

    def elsewhere(drafts):
        drafts[index_of(drafts, "wasm/instantiate", reason="activate")].data["state"] = digest(le64(7))

    problem = only_break(verified(forged_from(store, actor, elsewhere, blobs=[le64(7)])))
    assert problem.what == "state the activate starts from"
    assert problem.expected == digest(le64(7)) and problem.actual == digest(le64(2))


def test_verify_detects_a_passivation_holding_a_forged_state(passivated, forged_from):
    store, actor = passivated

    def forged(drafts):
        drafts[index_of(drafts, PASSIVATED)].data["state"] = digest(le64(7))
        drafts[index_of(drafts, "wasm/instantiate", reason="activate")].data["state"] = digest(le64(7))

    problem = only_break(verified(forged_from(store, actor, forged, blobs=[le64(7)])))
    assert problem.what == "state the passivation holds"


def test_verify_detects_an_activation_with_no_passivation(passivated, forged_from):
    store, actor = passivated

    def without(drafts):
        del drafts[index_of(drafts, PASSIVATED)]

    assert only_break(verified(forged_from(store, actor, without))).what == "an activate with no passivation"


def test_verify_detects_a_resume_after_a_passivation(passivated, forged_from):
    store, actor = passivated

    def as_resume(drafts):
        drafts[index_of(drafts, "wasm/instantiate", reason="activate")].data["reason"] = "resume"

    problem = only_break(verified(forged_from(store, actor, as_resume)))
    assert problem.what.startswith("a resume after the passivation")


def test_verify_detects_a_call_on_a_passivated_instance(passivated, forged_from):
    store, actor = passivated

    def no_activation(drafts):
        del drafts[index_of(drafts, "wasm/instantiate", reason="activate")]

    problem = only_break(verified(forged_from(store, actor, no_activation)))
    assert "with no live instance" in problem.what


def test_verify_detects_a_passivation_during_a_call(passivated, forged_from):
    store, actor = passivated

    def during(drafts):
        at = index_of(drafts, PASSIVATED)
        moved = drafts.pop(at)
        drafts.insert(at - 1, moved)  # between the last call and its result

    problem = only_break(verified(forged_from(store, actor, during)))
    assert problem.what.startswith("passivation during the call")
