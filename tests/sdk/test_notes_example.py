"""examples/notes, built with the real componentize-py (cached): documents in the store by hash with named versions,
files in and out of its folder, escapes refused, and its chain replayed with the folder and the labels gone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from store.blobs import blob_digest

from ._support import Stage, build, chain_problems

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")


def test_notes_keeps_versions_by_hash_and_moves_them_through_files(
    example: Callable[[str], Path], stage: Stage, tmp_path: Path
) -> None:
    project = example("notes")
    result = build(project)
    folder = tmp_path / "notes-folder"
    manifest = project / "manifest.toml"
    manifest.write_text(manifest.read_text().replace("/tmp/theater-notes", str(folder)))
    actor = stage.start(result, manifest)

    def ask(text: str) -> bytes:
        return stage.theater.request(actor, text.encode())

    first = ask("save todo buy milk").decode()
    assert first == blob_digest(b"buy milk").hex()
    second = ask("save todo buy milk and bread").decode()
    assert ask("save todo buy milk and bread").decode() == second  # the same text is one version
    assert ask("history todo").decode().splitlines() == [first, second]
    assert ask("get todo 0") == b"buy milk"
    assert ask("get todo") == b"buy milk and bread"
    assert ask("export todo") == b"todo.txt"
    assert (folder / "todo.txt").read_text() == "buy milk and bread"
    (folder / "idea.txt").write_text("written outside")
    assert ask("import idea") == blob_digest(b"written outside").hex().encode()
    assert ask("get idea") == b"written outside"
    assert ask("list") == b"idea\ntodo"
    assert ask("import ../secret").startswith(b"error: path '../secret.txt' has a '..' component")
    (folder / "link.txt").symlink_to(tmp_path / "elsewhere.txt")
    assert b"symlink" in ask("import link")

    stage.theater.stop(actor)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    for name, _ in stage.theater.store.blobs.labels("theater/stores/notes/"):
        stage.theater.store.blobs.remove_runtime_label(name)
    assert chain_problems(stage.theater) == []
