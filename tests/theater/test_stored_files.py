"""The ``stored`` file access (a project uploaded by ``theater start``): names of the map only, read from the blob
store within the maximums; children inherit the map and record it; what ``theater start`` carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay.schema import ActorCreated
from store import blob_digest
from store.errors import InvalidInputError, NotFoundError
from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.components.wat import ERR_MARKER
from theater.errors import ManifestError
from theater.files import MAX_STORED_FILES, FileAccess, check_name
from theater.project import project_files
from theater.runtime import Theater
from theater.server.manifests import client_manifest

MSG = '[[handlers]]\ntype = "message-server"\n'
SUP = f'name = "sup"\ncomponent = "sup.wat"\n{MSG}[[handlers]]\ntype = "supervisor"\n'


class CountingBlobs:
    """A blob store of a few blobs that counts how often one is read whole."""

    def __init__(self, blobs: dict[bytes, bytes], sizes: dict[bytes, int] | None = None) -> None:
        self.blobs = blobs
        self.sizes = sizes or {}
        self.reads = 0

    def size(self, digest: bytes) -> int:
        if digest not in self.blobs:
            raise NotFoundError("blob", digest.hex())
        return self.sizes.get(digest, len(self.blobs[digest]))

    def get(self, digest: bytes) -> bytes:
        self.reads += 1
        return self.blobs[digest]


def stored(files: dict[str, bytes], **sizes: int) -> tuple[FileAccess, CountingBlobs]:
    blobs = CountingBlobs({blob_digest(d): d for d in files.values()},
                          {blob_digest(files[n]): s for n, s in sizes.items()})
    return FileAccess.stored({n: blob_digest(d) for n, d in files.items()}, blobs), blobs


def read(access: FileAccess, name: str, limit: int = 1000) -> bytes:
    return access.read(name, limit=limit, what="manifest", source="<test>", field="")


def test_a_stored_access_reads_the_names_of_its_map_from_the_blob_store():
    access, _ = stored({"worker.toml": b"w", "build/w.wasm": b"x"})
    assert read(access, "worker.toml") == b"w"
    assert read(access, "./build//w.wasm") == b"x"
    assert read(access.within(Path("build")), "w.wasm") == b"x"


@pytest.mark.parametrize(("name", "why"), [
    ("other.toml", "'other.toml' is not one of them"),
    ("../worker.toml", "has a '..' component"),
    ("build/../worker.toml", "has a '..' component"),
    ("/worker.toml", "is an absolute path"),
    ("/etc/passwd", "is an absolute path"),
])
def test_a_stored_access_refuses_names_outside_its_map(name, why):
    access, blobs = stored({"worker.toml": b"w"})
    with pytest.raises(ManifestError, match="may name only the files uploaded with its tree") as caught:
        read(access, name)
    assert why in str(caught.value) and blobs.reads == 0


def test_a_stored_blob_over_the_maximum_is_refused_without_reading_it():
    access, blobs = stored({"big.wasm": b"x"}, **{"big.wasm": 10**9})
    with pytest.raises(ManifestError, match="holds 1000000000 bytes, more than the maximum of 1000"):
        read(access, "big.wasm")
    assert blobs.reads == 0


def test_a_stored_name_whose_blob_is_gone_is_refused():
    access = FileAccess.stored({"w.toml": bytes(32)}, CountingBlobs({}))
    with pytest.raises(ManifestError, match=f"its blob {'00' * 32} is not in the store"):
        read(access, "w.toml")


@pytest.mark.parametrize(("name", "problem"), [
    ("", None), ("/a", "is an absolute path"), ("a/../b", "has a '..' component"), ("..", "has a '..' component"),
    ("./a", "not in plain form"), ("a//b", "not in plain form"), ("a/", "not in plain form"), (".", "not in plain"),
    ("a\\b", "backslash"), ("a\0b", "NUL"), ("x" * 1025, "longer than 1024 bytes"), ("\udcff", "not valid Unicode"),
])
def test_an_uploaded_name_must_be_relative_and_plain(name, problem):
    with pytest.raises(InvalidInputError) as caught:
        check_name(name)
    assert problem is None or problem in str(caught.value)


def test_an_uploaded_map_is_bounded():
    with pytest.raises(InvalidInputError, match=f"at most {MAX_STORED_FILES} names"):
        FileAccess.stored({f"f{i}": bytes(32) for i in range(MAX_STORED_FILES + 1)}, CountingBlobs({}))


def test_a_child_of_a_stored_tree_inherits_the_map_and_records_it(tmp_path):
    with Theater(tmp_path / "home", durability="buffered", request_timeout=5.0) as theater:
        blobs = theater.store.blobs
        files = {"sup.wat": sw.supervisor_actor().encode(), "sub/w.wat": wat.echo_actor().encode(),
                 "sub/w.toml": f'name = "w"\ncomponent = "w.wat"\n{MSG}'.encode()}
        access = FileAccess.stored({n: blobs.put(d) for n, d in files.items()}, blobs)
        sup = theater.start(client_manifest(SUP, source="sup.toml", component=None, init_state=None, files=access))
        child = theater.request(sup, b"spawn\0sub/w.toml").decode()  # its component: sub/w.wat, beside it
        assert theater.actor(child).name == "w"
        recorded = ActorCreated.decode(theater.events(child)[0]).files
        assert recorded == {"base": "sub", "names": {n: blob_digest(d) for n, d in files.items()}}
        assert ActorCreated.decode(theater.events(sup)[0]).files == {**recorded, "base": ""}
        refused = theater.request(sup, b"spawn\0w.toml")
        assert refused.startswith(ERR_MARKER) and b"'w.toml' is not one of them" in refused


def test_an_actor_outside_a_stored_tree_records_no_map(tmp_path):
    (tmp_path / "w.wat").write_text(wat.echo_actor())
    (tmp_path / "w.toml").write_text(f'name = "w"\ncomponent = "w.wat"\n{MSG}')
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = theater.start(tmp_path / "w.toml")
        assert "files" not in theater.events(actor)[0].data


def test_theater_start_carries_the_directorys_manifests_and_the_files_they_name_and_nothing_else(tmp_path):
    (tmp_path / "secret.txt").write_bytes(b"outside")
    proj = tmp_path / "proj"
    (proj / "build").mkdir(parents=True)
    (proj / "sub").mkdir()
    (proj / "build" / "a.wasm").write_bytes(b"component")
    (proj / "s.bin").write_bytes(b"state")
    (proj / "a.toml").write_text('name = "a"\ncomponent = "./build/a.wasm"\ninit_state = { file = "s.bin" }\n')
    (proj / "b.toml").write_text('name = "b"\ncomponent = "../secret.txt"\ninit_state = { file = "to-secret" }\n')
    (proj / "c.toml").write_text('name = "c"\ncomponent = "/etc/hostname"\n')
    (proj / "bad.toml").write_text("not = [toml\n")
    (proj / "to-secret").symlink_to(tmp_path / "secret.txt")
    (proj / "notes.txt").write_text("not named")
    (proj / "sub" / "d.toml").write_text('name = "d"\ncomponent = "../build/a.wasm"\n')
    files = project_files(proj / "a.toml")
    assert sorted(files) == ["a.toml", "b.toml", "bad.toml", "build/a.wasm", "c.toml", "s.bin"]
    assert files["build/a.wasm"] == b"component" and files["s.bin"] == b"state"
