"""The ``filesystem`` handler: every path inside its root, only regular files, only the listed programs."""

from __future__ import annotations

import os
import stat

import pytest

from tests.handlers._host import FakeActor
from theater.errors import ManifestError
from theater.handlers.filesystem import FilesystemHandler


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    (path / "hello.txt").write_text("hello")
    (path / "sub").mkdir()
    (path / "sub" / "inner.txt").write_text("inner")
    return path


@pytest.fixture
def outside(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the operator's secret")
    return secret


def fs(root, **config):
    return FilesystemHandler(FakeActor(), {"path": str(root), **config}).functions()


def is_err(answer, *words):
    assert "err" in answer, answer
    assert all(w in answer["err"] for w in words), answer["err"]
    return answer["err"]


# Escapes.


@pytest.mark.parametrize("path", ["../secret.txt", "sub/../../secret.txt", "..", "sub/.."])
def test_a_dotdot_path_is_refused(root, outside, path):
    is_err(fs(root)["read-file"](path), "'..'")


def test_an_absolute_path_is_refused(root, outside):
    is_err(fs(root)["read-file"](str(outside)), "absolute")
    is_err(fs(root)["write-file"]("/tmp/x", "y"), "absolute")


def test_a_symlink_out_of_the_root_is_refused(root, outside):
    (root / "link.txt").symlink_to(outside)
    is_err(fs(root)["read-file"]("link.txt"), "symlink")
    assert outside.read_text() == "the operator's secret"


def test_a_directory_symlink_out_of_the_root_is_refused(root, outside):
    (root / "away").symlink_to(outside.parent)
    functions = fs(root)
    is_err(functions["read-file"]("away/secret.txt"), "'away'")
    is_err(functions["write-file"]("away/planted.txt", "x"), "'away'")
    is_err(functions["list-files"]("away"), "not a directory")
    assert not (outside.parent / "planted.txt").exists()


def test_writing_through_a_symlink_out_of_the_root_is_refused(root, outside):
    (root / "link.txt").symlink_to(outside)
    is_err(fs(root)["write-file"]("link.txt", "overwritten"), "symlink")
    assert outside.read_text() == "the operator's secret"


def test_a_symlink_swapped_in_after_the_check_is_not_followed(root, outside, monkeypatch):
    checked = FilesystemHandler._regular

    def check_then_swap(path, name, fd, **options):
        info = checked(path, name, fd, **options)
        os.unlink(name, dir_fd=fd)
        os.symlink(outside, name, dir_fd=fd)  # the attacker's swap, between the check and the open
        return info

    monkeypatch.setattr(FilesystemHandler, "_regular", staticmethod(check_then_swap))
    is_err(fs(root)["read-file"]("hello.txt"), "symlink")
    (root / "hello.txt").unlink()
    (root / "hello.txt").write_text("again")
    is_err(fs(root)["write-file"]("hello.txt", "x"), "symlink")
    assert outside.read_text() == "the operator's secret"


def test_dev_zero_behind_a_symlink_is_refused(root):
    (root / "zero").symlink_to("/dev/zero")
    is_err(fs(root)["read-file"]("zero"), "symlink")


def test_a_device_file_inside_the_root_is_refused(root):
    os.mknod(root / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # /dev/zero's numbers (the tests run as root)
    is_err(fs(root)["read-file"]("zero"), "character device")
    is_err(fs(root)["write-file"]("zero", "x"), "character device")


def test_a_fifo_inside_the_root_is_refused_without_blocking(root):
    os.mkfifo(root / "pipe")
    is_err(fs(root)["read-file"]("pipe"), "fifo")


def test_a_directory_read_as_a_file_is_refused(root):
    is_err(fs(root)["read-file"]("sub"), "directory")


# Behaviour.


def test_read_write_list_and_delete_inside_the_root(root):
    f = fs(root)
    assert f["read-file"]("hello.txt") == {"ok": b"hello"}
    assert f["write-file"]("sub/new.txt", "written") == {"ok": None}
    assert (root / "sub" / "new.txt").read_text() == "written"
    assert f["write-file"]("hello.txt", "short") == {"ok": None}
    assert (root / "hello.txt").read_text() == "short"
    assert f["list-files"]("sub") == {"ok": ["inner.txt", "new.txt"]}
    assert f["list-files"]("") == {"ok": ["hello.txt", "sub"]}
    assert f["path-exists"]("sub/new.txt") == {"ok": True}
    assert f["delete-file"]("sub/new.txt") == {"ok": None}
    assert f["path-exists"]("sub/new.txt") == {"ok": False}
    assert f["create-dir"]("made") == {"ok": None}
    assert f["write-file"]("made/deep.txt", "x") == {"ok": None}
    assert f["delete-dir"]("made") == {"ok": None}
    assert not (root / "made").exists()


def test_deleting_a_directory_holding_a_symlink_out_removes_the_link_only(root, outside):
    (root / "sub" / "link").symlink_to(outside.parent)
    assert fs(root)["delete-dir"]("sub") == {"ok": None}
    assert outside.read_text() == "the operator's secret"


def test_deleting_the_root_itself_is_refused(root):
    is_err(fs(root)["delete-dir"](""), "root itself")
    assert root.is_dir()


def test_read_only_mode_refuses_every_change(root):
    f = fs(root, read_only=True)
    assert f["read-file"]("hello.txt") == {"ok": b"hello"}
    for name, args in (("write-file", ("x", "y")), ("delete-file", ("hello.txt",)), ("create-dir", ("d",)),
                       ("delete-dir", ("sub",)), ("execute-command", ("", "echo", []))):
        is_err(f[name](*args), "read-only")
    assert sorted(os.listdir(root)) == ["hello.txt", "sub"]


def test_a_file_larger_than_max_read_bytes_is_refused(root):
    (root / "big").write_bytes(b"x" * 101)
    f = fs(root, max_read_bytes=100)
    is_err(f["read-file"]("big"), "max_read_bytes = 100")
    (root / "fits").write_bytes(b"x" * 100)
    assert f["read-file"]("fits") == {"ok": b"x" * 100}


def test_new_dir_creates_the_root(tmp_path):
    root = tmp_path / "fresh" / "root"
    assert fs(root, new_dir=True)["list-files"]("") == {"ok": []}
    assert root.is_dir()


@pytest.mark.parametrize(("config", "field"), [
    ({"path": "relative/dir"}, "handlers.filesystem.config.path"),
    ({"max_read_bytes": 0}, "handlers.filesystem.config.max_read_bytes"),
    ({"allowed_commands": ["ok", ""]}, "handlers.filesystem.config.allowed_commands[1]"),
])
def test_a_bad_config_is_refused_naming_the_field(root, config, field):
    with pytest.raises(ManifestError) as caught:
        FilesystemHandler(FakeActor(), {"path": str(root), **config})
    assert caught.value.field == field


def test_a_missing_root_is_refused_at_start(tmp_path):
    with pytest.raises(ManifestError, match="new_dir"):
        fs(tmp_path / "missing")


# Commands.


def test_a_command_not_allowed_is_refused(root):
    is_err(fs(root, allowed_commands=["echo"])["execute-command"]("", "rm", ["-rf", "."]), "'rm'", "allowed_commands")
    assert (root / "hello.txt").exists()


def test_a_shell_metacharacter_in_an_argument_is_not_interpreted(root):
    f = fs(root, allowed_commands=["echo"])
    answer = f["execute-command"]("", "echo", ["hi; touch pwned", "$(touch pwned2)", "`touch pwned3`", "*"])
    assert answer == {"ok": {"success": {"stdout": "hi; touch pwned $(touch pwned2) `touch pwned3` *\n",
                                         "stderr": "", "exit-code": 0}}}
    assert sorted(os.listdir(root)) == ["hello.txt", "sub"]


def test_a_nul_in_an_argument_is_refused_not_a_host_fault(root):
    is_err(fs(root, allowed_commands=["echo"])["execute-command"]("", "echo", ["a\0b"]), "NUL")


def test_a_command_runs_in_the_directory_inside_the_root(root):
    answer = fs(root, allowed_commands=["pwd"])["execute-command"]("sub", "pwd", [])
    assert answer["ok"]["success"]["stdout"] == f"{(root / 'sub').resolve()}\n"


def test_a_command_outside_the_root_is_refused(root):
    is_err(fs(root, allowed_commands=["pwd"])["execute-command"]("..", "pwd", []), "'..'")


def test_a_command_gets_only_path_in_its_environment(root, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "x")
    answer = fs(root, allowed_commands=["env"])["execute-command"]("", "env", [])
    assert answer["ok"]["success"]["stdout"].splitlines() == [f"PATH={os.environ['PATH']}"]


def test_a_runaway_command_is_killed_at_its_timeout(root):
    answer = fs(root, allowed_commands=["sleep"], command_timeout_ms=200)["execute-command"]("", "sleep", ["60"])
    assert "timeout" in answer["ok"]["error"]["message"]


def test_a_command_with_endless_output_is_killed_at_its_limit(root):
    answer = fs(root, allowed_commands=["yes"], max_output_bytes=10_000)["execute-command"]("", "yes", [])
    assert "10000 bytes" in answer["ok"]["error"]["message"]


def test_a_failing_command_reports_its_exit_code(root):
    answer = fs(root, allowed_commands=["cat"])["execute-command"]("", "cat", ["missing"])
    assert answer["ok"]["success"]["exit-code"] == 1
    assert "missing" in answer["ok"]["success"]["stderr"]


def test_execute_nix_command_is_refused_saying_why(root):
    is_err(fs(root, allowed_commands=["nix"])["execute-nix-command"]("", "ls"), "refused", "shell")


# Grants.


@pytest.mark.parametrize(("child", "problem"), [
    ({"path": "/"}, "not inside"),
    ({"path": "{root}/../elsewhere"}, "not inside"),
    ({"path": "{root}", "read_only": False}, "read_only"),
    ({"path": "{root}/sub", "read_only": True, "allowed_commands": ["sh"]}, "'sh'"),
    ({"path": "{root}/sub", "read_only": True, "max_read_bytes": 1 << 30}, "max_read_bytes"),
])
def test_a_child_widening_its_parents_filesystem_is_refused(root, child, problem):
    parent = {"path": str(root), "read_only": True, "allowed_commands": ["echo"], "max_read_bytes": 1000}
    child = {k: v.format(root=root) if isinstance(v, str) else v for k, v in child.items()}
    wider = FilesystemHandler.config_within(parent, child)
    assert wider is not None and problem in wider


def test_a_child_inside_its_parents_root_is_accepted(root):
    parent = {"path": str(root), "allowed_commands": ["echo", "pwd"]}
    assert FilesystemHandler.config_within(parent, {"path": str(root / "sub"), "allowed_commands": ["pwd"],
                                                    "read_only": True, "max_read_bytes": 10}) is None
