"""The ``store`` handler: content by hash in the home's blob store, labels in namespaces an actor was granted."""

from __future__ import annotations

import pytest

from store import Store
from store.blobs import blob_digest
from tests.handlers._host import FakeActor
from theater.errors import ManifestError
from theater.handlers.store import StoreHandler


@pytest.fixture
def home(tmp_path):
    with Store(tmp_path / "home", durability="buffered") as opened:
        yield opened


def make(home, **config):
    return StoreHandler(FakeActor(home), config).functions()


def ok(answer):
    assert "ok" in answer, answer
    return answer["ok"]


def is_err(answer, *words):
    assert "err" in answer, answer
    assert all(w in answer["err"] for w in words), answer["err"]


def ref(data: bytes) -> dict[str, str]:
    return {"hash": blob_digest(data).hex()}


def test_content_is_stored_by_its_blake3_hash_and_read_back(home):
    s = make(home, store_ids=["notes"])
    assert ok(s["store"]("notes", b"a note")) == ref(b"a note")
    assert ok(s["get"]("notes", ref(b"a note"))) == b"a note"
    assert ok(s["exists"]("notes", ref(b"a note"))) is True
    assert ok(s["exists"]("notes", ref(b"other"))) is False
    assert home.blobs.get(blob_digest(b"a note")) == b"a note"


def test_content_is_deduplicated_with_every_blob_of_the_home(home):
    home.blobs.put(b"already in the home")
    before = sorted(home.blobs)
    s = make(home, store_ids=["a", "b"])
    ok(s["store"]("a", b"already in the home"))
    ok(s["store"]("b", b"already in the home"))
    assert sorted(home.blobs) == before


def test_labels_point_at_content(home):
    s = make(home, store_ids=["notes"])
    first = ok(s["store-at-label"]("notes", "todo", b"v1"))
    assert ok(s["get-by-label"]("notes", "todo")) == {"some": first}
    second = ok(s["store"]("notes", b"v2"))
    ok(s["label"]("notes", "todo", second))
    assert ok(s["get-by-label"]("notes", "todo")) == {"some": second}
    ok(s["remove-from-label"]("notes", "todo", second))
    assert ok(s["get-by-label"]("notes", "todo")) == {"some": first}
    third = ok(s["replace-content-at-label"]("notes", "todo", b"v3"))
    assert ok(s["get-by-label"]("notes", "todo")) == {"some": third}
    ok(s["replace-at-label"]("notes", "todo", first))
    assert ok(s["get-by-label"]("notes", "todo")) == {"some": first}
    ok(s["store-at-label"]("notes", "done", b"v2"))
    assert ok(s["list-labels"]("notes")) == ["done", "todo"]
    assert sorted(r["hash"] for r in ok(s["list-all-content"]("notes"))) == sorted(
        r["hash"] for r in (first, second, third))
    assert ok(s["calculate-total-size"]("notes")) == 6
    ok(s["remove-label"]("notes", "todo"))
    assert ok(s["get-by-label"]("notes", "todo")) is None
    assert ok(s["list-labels"]("notes")) == ["done"]
    assert ok(s["get"]("notes", first)) == b"v1"  # removing a label keeps the content


def test_a_new_store_is_reachable_by_the_actor_that_created_it_only(home):
    actor = FakeActor(home)
    mine = StoreHandler(actor, {}).functions()
    store_id = ok(mine["new"]())
    ok(mine["store-at-label"](store_id, "x", b"mine"))
    again = StoreHandler(actor, {}).functions()  # a restarted instance of the same actor
    assert ok(again["get-by-label"](store_id, "x")) == {"some": ref(b"mine")}
    other = make(home)
    is_err(other["get-by-label"](store_id, "x"), "not granted")
    is_err(other["store-at-label"](store_id, "x", b"theirs"), "not granted")


def test_reaching_another_actors_store_id_is_refused(home):
    make(home, store_ids=["alice"])["store-at-label"]("alice", "diary", b"dear diary")
    bob = make(home, store_ids=["bob"])
    for name, args in (("get-by-label", ("alice", "diary")), ("list-labels", ("alice",)),
                       ("get", ("alice", ref(b"dear diary"))), ("exists", ("alice", ref(b"dear diary"))),
                       ("remove-label", ("alice", "diary")), ("calculate-total-size", ("alice",))):
        is_err(bob[name](*args), "'alice'", "not granted")


def test_content_of_another_namespace_is_not_reachable_by_hash(home):
    make(home, store_ids=["alice"])["store"]("alice", b"alice's content")
    bob = make(home, store_ids=["bob"])
    is_err(bob["get"]("bob", ref(b"alice's content")), "not in this store")
    assert ok(bob["exists"]("bob", ref(b"alice's content"))) is False
    is_err(bob["label"]("bob", "stolen", ref(b"alice's content")), "not in this store")


def test_any_blob_of_the_home_is_not_reachable_by_hash(home):
    digest = home.blobs.put(b"a component or another actor's state")
    s = make(home, store_ids=["notes"])
    is_err(s["get"]("notes", {"hash": digest.hex()}), "not in this store")


def test_reaching_a_reserved_label_is_refused(home):
    digest = home.blobs.put(b"a build")
    home.blobs.set_runtime_label("build/abc", digest)
    s = make(home, store_ids=["notes"])
    assert ok(s["get-by-label"]("notes", "build/abc")) is None
    ok(s["store-at-label"]("notes", "build/abc", b"planted"))
    assert home.blobs.get_label("build/abc") == digest
    is_err(s["list-labels"]("../build"), "not a store id")
    is_err(s["list-labels"]("notes/../../build"), "not a store id")


def test_a_store_id_that_is_a_path_is_refused(home):
    s = make(home, store_ids=["notes"])
    for bad in ("", "notes/label", "a" * 65, "no spaces"):
        is_err(s["list-labels"](bad), "not a store id")


def test_a_content_ref_that_is_not_a_hash_is_refused(home):
    s = make(home, store_ids=["notes"])
    is_err(s["get"]("notes", {"hash": "zz"}), "hex hash")


def test_the_byte_quota_is_kept(home):
    s = make(home, store_ids=["notes"], max_bytes=10)
    ok(s["store"]("notes", b"123456"))
    is_err(s["store"]("notes", b"12345"), "max_bytes = 10")
    ok(s["store"]("notes", b"123456"))  # the same content again takes no room
    ok(s["store"]("notes", b"1234"))


def test_the_label_quota_is_kept(home):
    s = make(home, store_ids=["notes"], max_labels=2)
    ok(s["store-at-label"]("notes", "a", b"x"))
    ok(s["store-at-label"]("notes", "b", b"x"))
    is_err(s["store-at-label"]("notes", "c", b"x"), "max_labels = 2")
    ok(s["store-at-label"]("notes", "a", b"y"))  # an existing label may change


def test_the_number_of_new_stores_is_bounded(home):
    s = make(home, max_stores=1)
    ok(s["new"]())
    is_err(s["new"](), "max_stores = 1")
    is_err(make(home, allow_new=False)["new"](), "allow_new = false")


@pytest.mark.parametrize(("config", "field"), [
    ({"store_ids": ["../x"]}, "handlers.store.config.store_ids[0]"),
    ({"max_bytes": -1}, "handlers.store.config.max_bytes"),
])
def test_a_bad_config_is_refused_naming_the_field(home, config, field):
    with pytest.raises(ManifestError) as caught:
        make(home, **config)
    assert caught.value.field == field


@pytest.mark.parametrize(("parent", "child", "problem"), [
    ({"store_ids": ["a"]}, {"store_ids": ["a", "b"]}, "'b'"),
    ({"allow_new": False}, {}, "allow_new"),
    ({"max_bytes": 10}, {"max_bytes": 11}, "max_bytes"),
    ({"max_labels": 10}, {}, "max_labels"),
])
def test_a_child_widening_its_parents_store_ids_or_quotas_is_refused(parent, child, problem):
    wider = StoreHandler.config_within(parent, child)
    assert wider is not None and problem in wider


def test_a_child_within_its_parents_store_grant_is_accepted():
    assert StoreHandler.config_within({"store_ids": ["a", "b"], "max_bytes": 10},
                                      {"store_ids": ["b"], "max_bytes": 5, "allow_new": False}) is None
