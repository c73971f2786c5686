"""Every function of ``environment``, ``filesystem`` and ``store``, called by component-text guests (the WAT kit)
through the runtime, found in the chain, and replayed with the world gone (files deleted, variables unset, the
store's labels removed). ``execute-command`` and ``process`` are driven by a Python actor (tests/sdk)."""

from __future__ import annotations

import functools
import os

import pytest

from store.blobs import blob_digest
from tests._fixtures import chain_problems
from tests.components import wat
from tests.components.wat import ENVIRONMENT, FILESYSTEM, HEAD, MSG, STORE, TAIL

MSG_SERVER = ["message-server"]


@functools.cache
def guest(iface: str, fn: str, args: tuple, result: str) -> str:
    return wat.actor_wat(request=wat.host_call(iface, fn, *args, result=result), minimal_imports=True)


def le(value: bytes) -> int:
    return int.from_bytes(value, "little")


@pytest.fixture
def ask(theater, manifest):
    """``ask(type, config, iface, fn, args, result, message)``: start a guest calling ``fn`` and ask it once."""
    made: dict[tuple, str] = {}

    def run(type_, config, iface, fn, args, result, message: bytes) -> bytes:
        key = (iface, fn, args, result)
        if key not in made:
            name = f"{iface.rsplit('/', 1)[1]}-{fn}-{len(made)}"
            path = manifest(name, guest(iface, fn, args, result), [*MSG_SERVER, type_], config={type_: config})
            made[key] = theater.start(path)
        return theater.request(made[key], message)

    return run


# environment


def test_every_environment_function_answers_from_the_grant_and_replays_unset(theater, ask, monkeypatch):
    monkeypatch.setenv("APP_MODE", "on")
    monkeypatch.setenv("APP_SECRET", "hunter2")
    config = {"allowed_prefixes": ["APP_"], "denied_vars": ["APP_SECRET"], "allow_list_all": True}

    def env(fn, result, message=b""):
        return ask("environment", config, ENVIRONMENT, fn, (MSG,) if fn != "list-vars" else (), result, message)

    assert env("get-var", "option", b"APP_MODE") == b"on"
    assert env("get-var", "option", b"APP_SECRET") == b""  # denied reads as unset (none)
    assert le(env("exists", "flag", b"APP_MODE")) == 1
    assert le(env("exists", "flag", b"APP_SECRET")) == 0
    assert le(env("list-vars", "count")) == 1
    monkeypatch.delenv("APP_MODE")
    monkeypatch.delenv("APP_SECRET")
    assert chain_problems(theater) == []


# filesystem


def test_every_filesystem_function_stays_in_its_root_and_replays_with_the_files_gone(theater, ask, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "in.txt").write_text("from the host")
    (tmp_path / "secret.txt").write_text("outside")
    config = {"path": str(root)}

    def fs(fn, args, result, message):
        return ask("filesystem", config, FILESYSTEM, fn, args, result, message)

    assert fs("read-file", (MSG,), "ptrlen", b"in.txt") == b"from the host"
    assert fs("read-file", (MSG,), "ptrlen", b"../secret.txt").startswith(b"!err:path '../secret.txt' has a '..'")
    assert fs("write-file", (HEAD, TAIL), "unit", b"out.txt\0written") == b""
    assert (root / "out.txt").read_text() == "written"
    assert fs("write-file", (HEAD, TAIL), "unit", b"/tmp/planted\0x").startswith(b"!err:path '/tmp/planted' is abs")
    assert fs("create-dir", (MSG,), "unit", b"made") == b""
    assert fs("list-files", (MSG,), "strings", b"") == b"in.txt\nmade\nout.txt"
    assert le(fs("path-exists", (MSG,), "bool", b"made")) == 1
    assert fs("delete-dir", (MSG,), "unit", b"made") == b""
    assert le(fs("path-exists", (MSG,), "bool", b"made")) == 0
    assert fs("delete-file", (MSG,), "unit", b"out.txt") == b""
    assert sorted(os.listdir(root)) == ["in.txt"]
    (root / "link").symlink_to(tmp_path / "secret.txt")
    assert b"symlink" in fs("read-file", (MSG,), "ptrlen", b"link")
    for path in root.iterdir():
        path.unlink()
    root.rmdir()
    assert chain_problems(theater) == []


# store


def test_every_store_function_keeps_to_its_namespace_and_replays_with_the_labels_gone(theater, ask):
    config = {"store_ids": ["notes"]}

    def st(fn, args, result, message=b""):
        return ask("store", config, STORE, fn, args, result, message)

    one, two = blob_digest(b"one").hex().encode(), blob_digest(b"two").hex().encode()
    assert st("store", (HEAD, TAIL), "ptrlen", b"notes\0one") == one
    assert st("get", (HEAD, TAIL), "ptrlen", b"notes\0" + one) == b"one"
    assert le(st("exists", (HEAD, TAIL), "bool", b"notes\0" + one)) == 1
    assert st("store-at-label", ("notes", HEAD, TAIL), "ptrlen", b"todo\0two") == two
    assert st("label", ("notes", "todo", MSG), "unit", one) == b""
    assert st("get-by-label", ("notes", MSG), "optref", b"todo") == one
    assert st("remove-from-label", ("notes", "todo", MSG), "unit", one) == b""
    assert st("get-by-label", ("notes", MSG), "optref", b"todo") == two
    assert st("replace-at-label", ("notes", "todo", MSG), "unit", one) == b""
    assert st("get-by-label", ("notes", MSG), "optref", b"todo") == one
    three = st("replace-content-at-label", ("notes", HEAD, TAIL), "ptrlen", b"done\0three")
    assert three == blob_digest(b"three").hex().encode()
    assert st("list-labels", (MSG,), "strings", b"notes") == b"done\ntodo"
    assert sorted(st("list-all-content", (MSG,), "strings", b"notes").split(b"\n")) == sorted([one, two, three])
    assert le(st("calculate-total-size", (MSG,), "u64", b"notes")) == len(b"onetwothree")
    assert st("remove-label", ("notes", MSG), "unit", b"done") == b""
    assert st("get-by-label", ("notes", MSG), "optref", b"done") == b""
    assert b"not granted" in st("list-labels", (MSG,), "strings", b"someone-elses")
    assert st("get", (HEAD, TAIL), "ptrlen", b"notes\0" + b"0" * 64).startswith(b"!err:")
    created = st("new", (), "ptrlen")
    assert len(created) == 36  # a uuid; another actor (the guest calling store) does not reach it
    assert b"not granted" in st("store", (HEAD, TAIL), "ptrlen", created + b"\0mine")
    for name, _ in theater.store.blobs.labels("theater/stores/"):
        theater.store.blobs.remove_runtime_label(name)
    assert chain_problems(theater) == []
