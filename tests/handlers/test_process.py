"""The ``process`` handler: only listed programs, no shell, bounded, output delivered as calls, dies with its actor."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.handlers._host import FakeActor
from theater.errors import ManifestError
from theater.handlers.process import HANDLE_EXIT, HANDLE_STDERR, HANDLE_STDOUT, ProcessHandler

EXPORTS = (HANDLE_STDOUT, HANDLE_STDERR, HANDLE_EXIT)
RAW, LINES = {"raw": None}, {"line-by-line": None}


@pytest.fixture
def work(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return path


def spawn_config(program, args=(), *, cwd=None, env=(), mode=LINES, chunk=None, timeout=None):
    return {"program": program, "args": list(args), "cwd": None if cwd is None else {"some": str(cwd)},
            "env": [list(pair) for pair in env], "buffer-size": 4096, "stdout-mode": mode, "stderr-mode": mode,
            "chunk-size": None if chunk is None else {"some": chunk},
            "execution-timeout": None if timeout is None else {"some": timeout}}


def make(work, **config):
    actor = FakeActor(exports=EXPORTS)
    handler = ProcessHandler(actor, {"allowed_paths": [str(work)], **config})
    return actor, handler, handler.functions()


def exited(actor):
    return actor.wait_calls(lambda calls: any(e == HANDLE_EXIT for e, _ in calls))


def outputs(calls, export):
    return [value for e, (pid, value) in ((e, v) for e, v in calls) if e == export]


def test_a_program_runs_and_its_output_and_exit_are_delivered(work):
    actor, handler, p = make(work, allowed_programs=["sh"])
    pid = p["os-spawn"](spawn_config("sh", ["-c", "echo one; echo two; echo err >&2; exit 3"]))["ok"]
    calls = exited(actor)
    assert outputs(calls, HANDLE_STDOUT) == [b"one", b"two"]
    assert outputs(calls, HANDLE_STDERR) == [b"err"]
    assert calls[-1] == (HANDLE_EXIT, [pid, 3])
    status = p["os-status"](pid)["ok"]
    assert (status["pid"], status["running"], status["exit-code"]) == (pid, False, {"some": 3})


def test_a_program_not_allowed_is_refused(work):
    _, _, p = make(work, allowed_programs=["echo"])
    answer = p["os-spawn"](spawn_config("sh", ["-c", "touch pwned"]))
    assert "'sh'" in answer["err"] and "allowed_programs" in answer["err"]
    assert os.listdir(work) == []


def test_a_shell_metacharacter_in_an_argument_is_not_interpreted(work):
    actor, _, p = make(work, allowed_programs=["echo"])
    p["os-spawn"](spawn_config("echo", ["x; touch pwned", "$(touch pwned2)", "|", "*"], cwd=work))
    calls = exited(actor)
    assert outputs(calls, HANDLE_STDOUT) == [b"x; touch pwned $(touch pwned2) | *"]
    assert os.listdir(work) == []


def test_a_cwd_outside_the_allowed_paths_is_refused(work, tmp_path):
    _, _, p = make(work, allowed_programs=["pwd"])
    assert "not inside" in p["os-spawn"](spawn_config("pwd", cwd=tmp_path))["err"]
    assert "'..'" in p["os-spawn"](spawn_config("pwd", cwd=f"{work}/.."))["err"]
    (work / "away").symlink_to(tmp_path)
    assert "not inside" in p["os-spawn"](spawn_config("pwd", cwd=work / "away"))["err"]


def test_nothing_runs_without_allowed_paths():
    handler = ProcessHandler(FakeActor(exports=EXPORTS), {"allowed_programs": ["pwd"]})
    assert "allowed_paths" in handler.functions()["os-spawn"](spawn_config("pwd"))["err"]


def test_the_environment_is_only_what_was_given(work, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "x")
    env = shutil.which("env")
    actor, _, p = make(work, allowed_programs=[env])
    p["os-spawn"](spawn_config(env, env=[("ONLY", "this")]))
    assert outputs(exited(actor), HANDLE_STDOUT) == [b"ONLY=this"]


def test_stdin_is_written_and_the_chunked_mode_splits_output(work):
    actor, _, p = make(work, allowed_programs=["head"])
    pid = p["os-spawn"](spawn_config("head", ["-c", "10"], mode={"chunked": None}, chunk=4))["ok"]
    assert p["os-write-stdin"](pid, b"0123456789")["ok"] == 10
    calls = exited(actor)
    assert outputs(calls, HANDLE_STDOUT) == [b"0123", b"4567", b"89"]
    assert calls[-1] == (HANDLE_EXIT, [pid, 0])


def test_a_runaway_process_is_killed_at_its_timeout(work):
    actor, handler, p = make(work, allowed_programs=["sleep"], execution_timeout=1)
    pid = p["os-spawn"](spawn_config("sleep", ["60"]))["ok"]
    assert exited(actor)[-1] == (HANDLE_EXIT, [pid, -9])
    assert handler.holds_live() is False


def test_a_process_with_endless_output_is_killed_at_its_limit(work):
    actor, _, p = make(work, allowed_programs=["yes"], max_output_buffer=10_000)
    pid = p["os-spawn"](spawn_config("yes", mode=RAW))["ok"]
    calls = exited(actor)
    assert calls[-1] == (HANDLE_EXIT, [pid, -9])
    assert sum(len(v) for v in outputs(calls, HANDLE_STDOUT)) == 10_000


def test_the_number_of_processes_is_bounded(work):
    actor, handler, p = make(work, allowed_programs=["sleep"], max_processes=1)
    pid = p["os-spawn"](spawn_config("sleep", ["60"]))["ok"]
    assert "max_processes = 1" in p["os-spawn"](spawn_config("sleep", ["60"]))["err"]
    assert handler.holds_live() is True
    assert p["os-kill"](pid) == {"ok": None}
    assert exited(actor)[-1] == (HANDLE_EXIT, [pid, -9])
    assert handler.holds_live() is False


def test_processes_die_with_the_actor(work):
    actor, handler, p = make(work, allowed_programs=["sleep"])
    pid = p["os-spawn"](spawn_config("sleep", ["60"]))["ok"]
    handler.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped before close returns
    assert "actor is ending" in p["os-spawn"](spawn_config("sleep", ["60"]))["err"]
    assert handler.holds_live() is False


def test_a_pid_the_actor_did_not_start_is_refused(work):
    _, _, p = make(work, allowed_programs=["sleep"])
    for name, args in (("os-kill", (1,)), ("os-signal", (1, 9)), ("os-status", (os.getpid(),)),
                       ("os-write-stdin", (1, b"x"))):
        assert "not a process this actor started" in p[name](*args)["err"]


def test_a_signal_is_delivered(work):
    actor, _, p = make(work, allowed_programs=["sleep"])
    pid = p["os-spawn"](spawn_config("sleep", ["60"]))["ok"]
    assert p["os-signal"](pid, 15) == {"ok": None}
    assert exited(actor)[-1] == (HANDLE_EXIT, [pid, -15])
    assert "not a signal" in p["os-signal"](pid, 0)["err"]


@pytest.mark.parametrize(("config", "field"), [
    ({"allowed_paths": ["relative"]}, "handlers.process.config.allowed_paths[0]"),
    ({"max_processes": 0}, "handlers.process.config.max_processes"),
])
def test_a_bad_config_is_refused_naming_the_field(config, field):
    with pytest.raises(ManifestError) as caught:
        ProcessHandler(FakeActor(), config)
    assert caught.value.field == field


@pytest.mark.parametrize(("child", "problem"), [
    ({"allowed_programs": ["sh"]}, "'sh'"),
    ({"allowed_paths": ["/"]}, "not inside"),
    ({"max_processes": 100}, "max_processes"),
    ({"execution_timeout": 10_000}, "execution_timeout"),
])
def test_a_child_widening_its_parents_programs_or_paths_is_refused(work, child, problem):
    parent = {"allowed_programs": ["echo"], "allowed_paths": [str(work)]}
    wider = ProcessHandler.config_within(parent, child)
    assert wider is not None and problem in wider


def test_a_child_within_its_parents_process_grant_is_accepted(work):
    parent = {"allowed_programs": ["echo", "sleep"], "allowed_paths": [str(work)]}
    child = {"allowed_programs": ["echo"], "allowed_paths": [str(work / "inner")], "max_processes": 1}
    assert ProcessHandler.config_within(parent, child) is None


def test_endless_short_lines_are_cut_at_the_most_output_calls(work, monkeypatch):
    monkeypatch.setattr("theater.handlers.process.MAX_DELIVERIES", 50)
    actor, _, p = make(work, allowed_programs=["yes"])
    pid = p["os-spawn"](spawn_config("yes"))["ok"]  # "y\n" forever: one call per line
    calls = exited(actor)
    assert calls[-1] == (HANDLE_EXIT, [pid, -9])
    assert len(outputs(calls, HANDLE_STDOUT)) <= 50
