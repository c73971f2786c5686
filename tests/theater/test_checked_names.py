"""A name checked once (``FileAccess.check``) and handed on to ``read``, ``beside`` and the component loader: the
file opened is the very file that was checked, whatever is swapped in between; a name checked by another access
is checked again; the kernel's resolution and ``os.path.realpath`` agree on what is inside the root, and every
refusal is decided as before."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.components import wat
from theater import files as files_module
from theater.errors import ManifestError
from theater.files import Checked, FileAccess
from theater.manifest import load_manifest, parse_manifest

SECRET = b"the operator's secret"


def read(access: FileAccess, name: str | Checked, limit: int = 1000) -> bytes:
    return access.read(name, limit=limit, what="state", source="<test>", field="init_state")


def check(access: FileAccess, name: str) -> Checked:
    return access.check(name, source="<test>", field="init_state")


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root holding ``sub/state.bin``, and beside it an ``outside`` directory holding a secret of that name."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "state.bin").write_bytes(b"inside")
    (outside / "state.bin").write_bytes(SECRET)
    return root, outside


@pytest.fixture(params=[True, False], ids=["kernel", "realpath"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run the test with the kernel's resolution (Linux) and with ``os.path.realpath`` alone."""
    if request.param and not files_module._KERNEL_PATHS:
        pytest.skip("no O_PATH or /proc/self/fd here")
    monkeypatch.setattr(files_module, "_KERNEL_PATHS", request.param)
    return request.param


def test_a_symlink_swapped_in_between_the_check_and_the_open_is_refused(tree, resolution):
    root, outside = tree
    access = FileAccess.confined(root)
    checked = check(access, "sub/state.bin")
    (root / "sub" / "state.bin").unlink()
    (root / "sub" / "state.bin").symlink_to(outside / "state.bin")
    with pytest.raises(ManifestError, match="'sub/state.bin'") as caught:
        read(access, checked)
    assert SECRET.decode() not in str(caught.value)


def test_a_directory_swapped_for_a_symlink_out_between_the_check_and_the_open_is_refused(tree, resolution):
    root, outside = tree
    access = FileAccess.confined(root)
    checked = check(access, "sub/state.bin")
    (root / "sub").rename(root / "old")
    (root / "sub").symlink_to(outside, target_is_directory=True)  # the last component is a regular file again
    why = "it was replaced while being opened" if resolution else "leads out of it"  # else: checked again
    with pytest.raises(ManifestError, match=why):
        read(access, checked)
    with pytest.raises(ManifestError, match="leads out of it"):
        read(access, "sub/state.bin")  # named again, it is checked again


def test_a_file_replaced_between_the_check_and_the_open_is_refused(tree):
    root, outside = tree
    access = FileAccess.confined(root)
    checked = check(access, "sub/state.bin")
    os.replace(outside / "state.bin", root / "sub" / "state.bin")  # another file under the checked name
    if checked.stat is None:
        pytest.skip("the kernel's resolution is not available here")
    with pytest.raises(ManifestError, match="it was replaced while being opened"):
        read(access, checked)


def test_a_fifo_swapped_in_after_the_check_is_refused_without_blocking(tree):
    root, _ = tree
    access = FileAccess.confined(root)
    checked = check(access, "sub/state.bin")
    (root / "sub" / "state.bin").unlink()
    os.mkfifo(root / "sub" / "state.bin")
    with pytest.raises(ManifestError, match="cannot read the state file"):
        read(access, checked)


def test_a_name_checked_by_the_operators_access_is_checked_again_by_a_guests(tree, resolution):
    root, outside = tree
    operators = FileAccess.trusted(root)
    guests = FileAccess.confined(root, origin="actor x")
    checked = operators.check(str(outside / "state.bin"), source="<test>", field="init_state")
    assert read(operators, checked) == SECRET
    with pytest.raises(ManifestError, match="a manifest from actor x may name only files inside"):
        read(guests, checked)
    with pytest.raises(ManifestError, match="is an absolute path"):
        guests.beside(checked, source="<test>", field="")
    (root / "link").symlink_to(outside / "state.bin")
    through = operators.check("link", source="<test>", field="init_state")
    assert read(operators, through) == SECRET
    with pytest.raises(ManifestError, match="leads out of it"):
        read(guests, through)


@pytest.mark.parametrize("name, why", [
    ("../outside/state.bin", "has a '..' component"),
    ("to-outside/state.bin", "leads out of it"),
    ("to-secret", "leads out of it"),
    ("to-missing-outside", "leads out of it"),
    ("loop", "leads into a symlink loop"),
    ("to-loop-outside", "leads into a symlink loop"),
])
def test_a_name_leading_out_is_refused_the_same_whichever_resolution_runs(tree, resolution, name, why):
    root, outside = tree
    (root / "to-outside").symlink_to(outside, target_is_directory=True)
    (root / "to-secret").symlink_to(outside / "state.bin")
    (root / "to-missing-outside").symlink_to(outside / "missing")
    (root / "loop").symlink_to(root / "loop")
    (outside / "loop").symlink_to(outside / "loop")
    (root / "to-loop-outside").symlink_to(outside / "loop")
    with pytest.raises(ManifestError, match=why):
        check(FileAccess.confined(root), name)


def test_names_inside_the_root_resolve_to_the_same_real_path_whichever_resolution_runs(tree, monkeypatch):
    root, _ = tree
    (root / "to-sub").symlink_to(root / "sub", target_is_directory=True)
    (root / "sub" / "to-state").symlink_to("state.bin")
    access = FileAccess.confined(root)
    names = ["sub/state.bin", "to-sub/state.bin", "to-sub/to-state", "./sub//state.bin", "sub/", "", "sub/missing"]
    found = {}
    for kernel in (True, False):
        monkeypatch.setattr(files_module, "_KERNEL_PATHS", kernel and files_module._KERNEL_PATHS)
        found[kernel] = [check(access, name).path for name in names]
    assert found[True] == found[False]
    real = str((root / "sub" / "state.bin").resolve())
    assert found[True][:4] == [real] * 4
    for name in names[:3]:
        assert read(access, check(access, name)) == b"inside"


def test_a_manifest_file_is_resolved_once_for_its_read_and_its_directory(tree, monkeypatch):
    root, _ = tree
    (root / "sub" / "w.toml").write_text('name = "w"\ncomponent = "store:w"\ninit_state = { file = "state.bin" }\n')
    calls: list[str] = []
    original = files_module._real
    monkeypatch.setattr(files_module, "_real", lambda path, top: calls.append(path) or original(path, top))
    manifest = load_manifest("sub/w.toml", files=FileAccess.confined(root))
    assert manifest.init_state == b"inside"  # read beside it, in the checked file's directory
    assert [Path(p).name for p in calls] == ["w.toml", "state.bin"]


def test_a_manifest_file_swapped_for_a_symlink_out_is_refused(tree, resolution):
    root, outside = tree
    (outside / "w.toml").write_text('name = "w"\ncomponent = "store:w"\n')
    (root / "w.toml").symlink_to(outside / "w.toml")
    with pytest.raises(ManifestError, match="leads out of it"):
        load_manifest("w.toml", files=FileAccess.confined(root))


def test_a_remembered_component_whose_directory_is_swapped_for_a_symlink_out_is_refused(theater, tmp_path):
    root, outside = tmp_path / "guest", tmp_path / "outside"
    (root / "build").mkdir(parents=True)
    outside.mkdir()
    (root / "build" / "actor.wat").write_text(wat.echo_actor())
    (outside / "actor.wat").write_text(wat.echo_actor())
    text = 'name = "actor"\ncomponent = "build/actor.wat"\n'
    confined = FileAccess.confined(root)
    theater.start(parse_manifest(text, files=confined))  # remembered
    (root / "build").rename(root / "old")
    (root / "build").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ManifestError, match="leads out of it"):
        theater.start(parse_manifest(text, files=confined))
    manifest = parse_manifest('name = "actor"\ncomponent = "old/actor.wat"\n', files=confined)
    assert theater.start(manifest)  # the remembered file itself is still the guest's


def test_an_operators_component_symlink_loop_is_a_manifest_error_not_a_traceback(tmp_path, resolution):
    (tmp_path / "loop.wat").symlink_to(tmp_path / "loop.wat")
    with pytest.raises(ManifestError, match="component: the file 'loop.wat' leads into a symlink loop"):
        parse_manifest('name = "x"\ncomponent = "loop.wat"\n', files=FileAccess.trusted(tmp_path))


def test_an_operators_component_path_is_its_real_path_whichever_resolution_runs(tmp_path, monkeypatch):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "a.wat").write_text(wat.echo_actor())
    (tmp_path / "link").symlink_to(tmp_path / "build", target_is_directory=True)
    text = 'name = "x"\ncomponent = "link/a.wat"\n'
    found = []
    for kernel in (True, False):
        monkeypatch.setattr(files_module, "_KERNEL_PATHS", kernel and files_module._KERNEL_PATHS)
        found.append(parse_manifest(text, files=FileAccess.trusted(tmp_path)).component.path)
    assert found == [(tmp_path / "build" / "a.wat").resolve()] * 2
    assert parse_manifest(text, files=FileAccess.trusted()).component.path == Path("link/a.wat")  # as written
