"""The artifact cache: compiled components kept outside LMDB, returned only when sealed with the home's key.

Attacks on the cache (the engine's side, with real components, is in tests/replay/test_compiled_cache.py): an
artifact written without the key, one sealed by another home, one moved to another component's name, one damaged.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from store import ArtifactRejected, Store
from store.artifacts import KEY_FILE, KEY_SIZE, SEAL_SIZE, ArtifactCache
from store.errors import InvalidInputError

NAME = "ab" * 32 + ".wasmtime-50.0.1.0123456789abcdef"
OTHER = "cd" * 32 + ".wasmtime-50.0.1.0123456789abcdef"
ARTIFACT = bytes(range(256)) * 64


def test_a_sealed_artifact_comes_back_as_it_was_put(store: Store) -> None:
    store.artifacts.put(NAME, ARTIFACT)

    assert store.artifacts.get(NAME) == ARTIFACT
    assert store.artifacts.path(NAME).parent == store.path / "compiled"


def test_an_artifact_nobody_put_is_none(store: Store) -> None:
    assert store.artifacts.get(NAME) is None


def test_an_artifact_written_without_the_key_is_rejected(store: Store) -> None:
    store.artifacts.put(OTHER, b"something")  # the home has a key
    store.artifacts.path(NAME).write_bytes(ARTIFACT)  # planted: plain bytes, no seal

    with pytest.raises(ArtifactRejected, match="carries no seal"):
        store.artifacts.get(NAME)


def test_an_artifact_with_a_forged_seal_is_rejected(store: Store) -> None:
    store.artifacts.put(NAME, ARTIFACT)
    sealed = store.artifacts.path(NAME).read_bytes()
    forged = b"native code of the attacker" + sealed[-SEAL_SIZE:-32] + bytes(32)  # right magic, made-up MAC
    store.artifacts.path(NAME).write_bytes(forged)

    with pytest.raises(ArtifactRejected, match="not made with this home's key"):
        store.artifacts.get(NAME)


def test_an_artifact_sealed_by_another_home_is_rejected(tmp_path: Path) -> None:
    with Store(tmp_path / "theirs") as theirs, Store(tmp_path / "ours") as ours:
        theirs.artifacts.put(NAME, ARTIFACT)
        ours.artifacts.put(OTHER, b"ours has a key too")
        ours.artifacts.path(NAME).write_bytes(theirs.artifacts.path(NAME).read_bytes())

        with pytest.raises(ArtifactRejected, match="not made with this home's key"):
            ours.artifacts.get(NAME)


def test_an_artifact_moved_to_another_components_name_is_rejected(store: Store) -> None:
    store.artifacts.put(OTHER, ARTIFACT)
    store.artifacts.path(OTHER).rename(store.artifacts.path(NAME))

    with pytest.raises(ArtifactRejected, match="not made with this home's key"):
        store.artifacts.get(NAME)


@pytest.mark.parametrize("where", [0, len(ARTIFACT) // 2, len(ARTIFACT) - 1, len(ARTIFACT) + SEAL_SIZE - 1])
def test_any_flipped_byte_of_a_sealed_artifact_is_detected(store: Store, where: int) -> None:
    store.artifacts.put(NAME, ARTIFACT)
    path = store.artifacts.path(NAME)
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactRejected):
        store.artifacts.get(NAME)


def test_a_truncated_artifact_is_rejected(store: Store) -> None:
    store.artifacts.put(NAME, ARTIFACT)
    path = store.artifacts.path(NAME)
    path.write_bytes(path.read_bytes()[:10])

    with pytest.raises(ArtifactRejected, match="too short"):
        store.artifacts.get(NAME)


def test_no_key_means_no_artifact_is_trusted(tmp_path: Path) -> None:
    ArtifactCache(tmp_path / "compiled").put(NAME, ARTIFACT)
    (tmp_path / "compiled" / KEY_FILE).unlink()

    with pytest.raises(ArtifactRejected, match="not made with this home's key"):
        ArtifactCache(tmp_path / "compiled").get(NAME)


def test_the_key_is_private_random_and_made_once(tmp_path: Path) -> None:
    first = ArtifactCache(tmp_path / "compiled")
    second = ArtifactCache(tmp_path / "compiled")  # another process on the same home
    first.put(NAME, ARTIFACT)
    second.put(OTHER, ARTIFACT)

    key = tmp_path / "compiled" / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == KEY_SIZE and key.read_bytes() != bytes(KEY_SIZE)
    assert first.get(OTHER) == second.get(NAME) == ARTIFACT  # both sealed with the one key
    assert sorted(p.name for p in (tmp_path / "compiled").iterdir()) == sorted(
        [KEY_FILE, f"{NAME}.bin", f"{OTHER}.bin"])  # no temporary files left behind


def test_a_damaged_key_is_replaced_and_its_artifacts_are_not_trusted(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "compiled")
    cache.put(NAME, ARTIFACT)
    (tmp_path / "compiled" / KEY_FILE).write_bytes(b"short")

    fresh = ArtifactCache(tmp_path / "compiled")
    with pytest.raises(ArtifactRejected):
        fresh.get(NAME)
    fresh.put(NAME, ARTIFACT)
    assert fresh.get(NAME) == ARTIFACT
    assert len((tmp_path / "compiled" / KEY_FILE).read_bytes()) == KEY_SIZE


def test_a_read_only_home_reads_sealed_artifacts_and_writes_nothing(store_path: Path) -> None:
    with Store(store_path) as writable:
        writable.artifacts.put(NAME, ARTIFACT)

    with Store(store_path, readonly=True) as readonly:
        assert readonly.artifacts.get(NAME) == ARTIFACT
        readonly.artifacts.put(OTHER, ARTIFACT)
        assert readonly.artifacts.get(OTHER) is None


def test_a_read_only_home_without_a_key_creates_none(store_path: Path) -> None:
    Store(store_path).close()

    with Store(store_path, readonly=True) as readonly:
        readonly.artifacts.put(NAME, ARTIFACT)
        assert readonly.artifacts.get(NAME) is None
    assert not (store_path / "compiled").exists()


@pytest.mark.parametrize("name", ["", "../escape", "/etc/passwd", "a/b", ".key", "-x", "key\0", "x" * 201])
def test_artifact_names_cannot_leave_the_cache_directory(store: Store, name: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid artifact name"):
        store.artifacts.put(name, ARTIFACT)
    with pytest.raises(InvalidInputError, match="invalid artifact name"):
        store.artifacts.get(name)
