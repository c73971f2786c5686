"""A component file read for one start is not read again for the next while it is unchanged; any change is seen,
and the name is checked against the manifest's file access every time."""

from __future__ import annotations

import pytest

from store import blob_digest
from tests.components import wat
from theater.errors import ManifestError
from theater.files import FileAccess
from theater.manifest import parse_manifest


def test_unchanged_component_file_is_read_once(theater, manifest, monkeypatch):
    path = manifest("echo", wat.echo_actor())
    reads = []
    original = FileAccess.read
    monkeypatch.setattr(FileAccess, "read", lambda self, name, **kw: reads.append(name) or original(self, name, **kw))
    first, second = theater.start(path), theater.start(path)
    assert [str(name).rsplit("/", 1)[-1] for name in reads] == ["echo.toml", "echo.wat", "echo.toml"]
    assert theater.events(first)[0].data["component"] == theater.events(second)[0].data["component"]


def test_component_file_rewritten_between_starts_is_read_again(theater, manifest):
    path = manifest("actor", wat.echo_actor())
    echo = theater.start(path)
    component = path.parent / "actor.wat"
    component.write_text(wat.counter_actor())  # same name, new bytes (and a new change time)
    counter = theater.start(path)
    assert theater.events(counter)[0].data["component"] == blob_digest(component.read_bytes())
    assert theater.events(counter)[0].data["component"] != theater.events(echo)[0].data["component"]
    assert theater.request(counter, b"") == (1).to_bytes(8, "little")


def test_remembered_component_file_swapped_for_a_symlink_out_of_the_root_is_refused(theater, tmp_path):
    root = tmp_path / "guest"
    root.mkdir()
    (root / "actor.wat").write_text(wat.echo_actor())
    outside = tmp_path / "secret.wat"
    outside.write_text(wat.echo_actor())
    text = 'name = "actor"\ncomponent = "actor.wat"\n'
    confined = FileAccess.confined(root)
    theater.start(parse_manifest(text, files=confined))  # remembered
    (root / "actor.wat").unlink()
    (root / "actor.wat").symlink_to(outside)  # the same bytes, but out of the root the guest may read
    with pytest.raises(ManifestError, match="leads out of it"):
        theater.start(parse_manifest(text, files=confined))
