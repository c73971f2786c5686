"""Attacks on the runtime's resources through a manifest: limits up to 2**63, children above their parent, TOML
nested until the parser overflows the stack."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from replay.replayer import ReplayLimits
from tests._chains import chain_problems
from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.components.wat import ERR_MARKER
from theater.errors import ManifestError
from theater import manifest as manifest_module
from theater.manifest import (
    DEFAULT_MAXIMUMS,
    MAX_TOML_DEPTH,
    Limits,
    Maximums,
    check_limits,
    check_permissions,
    parse_manifest,
    parse_toml,
)
from theater.runtime import Theater
from theater.server.manifests import client_manifest

LIMITS = [f.name for f in dataclasses.fields(Limits)]
SUPERVISOR = '[[handlers]]\ntype = "message-server"\n[[handlers]]\ntype = "supervisor"\n'
MSG = '[[handlers]]\ntype = "message-server"\n'


def manifest_text(name: str, component: str, handlers: str = MSG, limits: dict[str, int] | None = None) -> str:
    table = "".join(f"{key} = {value}\n" for key, value in (limits or {}).items())
    return f'name = "{name}"\ncomponent = "{component}"\n{handlers}' + (f"[limits]\n{table}" if table else "")


@pytest.fixture
def actors(tmp_path: Path) -> Path:
    directory = tmp_path / "actors"
    directory.mkdir()
    (directory / "worker.wat").write_text(wat.echo_actor())
    (directory / "sup.wat").write_text(sw.supervisor_actor())
    return directory


@pytest.fixture
def theater(tmp_path: Path) -> Iterator[Theater]:
    opened = Theater(tmp_path / "home", durability="buffered", request_timeout=5.0)
    try:
        yield opened
        opened.actors()
        problems = chain_problems(opened.store)
    finally:
        opened.close()
    assert problems == []


# Limits above the runtime's maximums.


@pytest.mark.parametrize("field", LIMITS)
def test_a_limit_of_2_to_the_63_is_refused_naming_the_field_value_and_maximum(theater, actors, field):
    path = actors / "greedy.toml"
    path.write_text(manifest_text("greedy", "worker.wat", limits={field: 2**63}))
    maximum = getattr(Maximums(), field)
    with pytest.raises(ManifestError, match=rf"greedy.toml: limits.{field}: {2**63} is more than this runtime's "
                                            rf"maximum of {maximum} \(an operator setting\)$"):
        theater.start(path)
    assert theater.actors() == []


def test_the_maximums_are_the_operators_to_set(tmp_path, actors):
    path = actors / "w.toml"
    with Theater(tmp_path / "home", durability="buffered", maximums=Maximums(fuel_per_call=5_000_000)) as theater:
        path.write_text(manifest_text("w", "worker.wat", limits={"fuel_per_call": 5_000_001}))
        with pytest.raises(ManifestError, match=r"limits.fuel_per_call: 5000001 is more than .* maximum of 5000000"):
            theater.start(path)
        with pytest.raises(ManifestError, match=r"limits.fuel_per_call: 1000000000 is more than"):
            theater.start(manifest_text("w", str(actors / "worker.wat")))  # the manifest default is above it too
        path.write_text(manifest_text("w", "worker.wat", limits={"fuel_per_call": 5_000_000}))
        actor = theater.start(path)
        assert theater.request(actor, b"hi") == b"hi"


def test_an_api_clients_manifest_is_held_to_the_maximums(theater, actors):
    digest = theater.store.blobs.put(wat.echo_actor().encode())
    greedy = client_manifest(manifest_text("greedy", "x.wat", limits={"memory_bytes": 2**40}), source="<api>",
                             component=digest, init_state=None)
    with pytest.raises(ManifestError, match=r"<api>: limits.memory_bytes: 1099511627776 is more than"):
        theater.start(greedy)


def test_a_recorded_actor_over_lowered_maximums_is_not_reopened(tmp_path, actors):
    path = actors / "w.toml"
    path.write_text(manifest_text("w", "worker.wat", limits={"deadline_ms": 60_000}))
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = theater.start(path)
    with Theater(tmp_path / "home", durability="buffered", maximums=Maximums(deadline_ms=1_000)) as theater:
        with pytest.raises(ManifestError, match=r"limits.deadline_ms: 60000 is more than .* maximum of 1000"):
            theater.reopen(actor)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True])
def test_maximums_must_be_positive_integers(bad):
    with pytest.raises(ValueError, match=r"Maximums.fuel_per_call must be a positive integer"):
        Maximums(fuel_per_call=bad)


# A child's limits lie within its parent's.


@pytest.mark.parametrize("field", LIMITS)
def test_check_permissions_refuses_a_child_limit_above_its_parents(field):
    parent = parse_manifest(manifest_text("parent", "p.wat", limits={field: 1000}), source="parent.toml")
    child = parse_manifest(manifest_text("child", "c.wat", limits={field: 1001}), source="child.toml")
    with pytest.raises(ManifestError, match=rf"^child.toml: limits.{field}: 'child' asks for 1001, more than its "
                                            rf"parent 'parent' has \(1000\); a child's limits cannot exceed its"):
        check_permissions(child, parent)
    check_permissions(dataclasses.replace(child, limits=parent.limits), parent)


def test_a_guest_cannot_spawn_a_child_with_more_fuel_than_itself(theater, actors):
    (actors / "sup.toml").write_text(manifest_text("sup", "sup.wat", SUPERVISOR, {"fuel_per_call": 10_000_000}))
    (actors / "greedy.toml").write_text(manifest_text("greedy", "worker.wat", limits={"fuel_per_call": 10**11}))
    (actors / "modest.toml").write_text(manifest_text("modest", "worker.wat", limits={"fuel_per_call": 10_000_000}))
    sup = theater.start(actors / "sup.toml")
    answer = theater.request(sup, b"spawn\0greedy.toml")
    assert answer.startswith(ERR_MARKER)
    assert b"limits.fuel_per_call: 'greedy' asks for 100000000000, more than its parent 'sup' has (10000000)" in answer
    assert theater.request(sup, b"list\0") == b""
    child = theater.request(sup, b"spawn\0modest.toml").decode()
    assert theater.actor(child).manifest.limits.fuel_per_call == 10_000_000


def test_a_child_started_through_the_api_cannot_exceed_its_parents_limits(theater, actors):
    (actors / "parent.toml").write_text(manifest_text("parent", "worker.wat", limits={"memory_bytes": 1 << 24}))
    parent = theater.start(actors / "parent.toml")
    with pytest.raises(ManifestError, match=r"limits.memory_bytes: 'child' asks for 268435456, more than"):
        theater.start(manifest_text("child", str(actors / "worker.wat")), parent=parent)


# TOML nested until the parser's recursion gives out.


@pytest.mark.parametrize(
    "text",
    ["x = " + "[" * 100_000 + "]" * 100_000, "x = " + "{a = " * 100_000 + "1" + "}" * 100_000,
     'name = "a"\ncomponent = "a.wat"\ninit_state = { json = ' + "[" * 100_000 + "]" * 100_000 + " }"],
    ids=["arrays", "inline-tables", "init-state-json"],
)
def test_deeply_nested_toml_is_a_manifest_error_not_a_recursion_error(text):
    with pytest.raises(ManifestError, match=r"^deep.toml: invalid TOML: arrays or tables are nested too deeply$"):
        parse_manifest(text, source="deep.toml")


def test_a_deeply_nested_manifest_is_refused_before_the_toml_parser_recurses(monkeypatch):
    # At the recursion limit, whatever else runs on the stack fails too (a finalizer the garbage collector calls
    # there is lost, and what it frees leaks): the depth is checked first, without recursion.
    def recursing(text: str) -> dict:
        raise AssertionError("the TOML parser ran on a manifest nested 100,000 levels")

    monkeypatch.setattr(manifest_module.tomllib, "loads", recursing)
    with pytest.raises(ManifestError, match=r"nested too deeply"):
        parse_toml("x = " + "[" * 100_000 + "]" * 100_000, "deep.toml")


def test_brackets_in_strings_and_comments_do_not_count_as_nesting():
    deep = "[" * (MAX_TOML_DEPTH + 5)
    text = (f'a = "{deep}"\nb = \'{deep}\'\nc = """\n{deep}\n"""\nd = \'\'\'{deep}\'\'\'\n# {deep}\n'
            f'e = "\\"{deep}"\n')
    assert parse_toml(text, "ok.toml")["e"] == '"' + deep
    nested = "x = " + "[" * MAX_TOML_DEPTH + "]" * MAX_TOML_DEPTH
    assert parse_toml(nested, "ok.toml")["x"]  # the deepest nesting allowed is parsed
    with pytest.raises(ManifestError, match=r"nested too deeply"):
        parse_toml("x = " + "[" * (MAX_TOML_DEPTH + 1) + "]" * (MAX_TOML_DEPTH + 1), "deep.toml")


def test_deeply_nested_toml_from_an_api_client_is_a_manifest_error():
    with pytest.raises(ManifestError, match=r"nested too deeply"):
        client_manifest("x = " + "[" * 100_000 + "]" * 100_000, source="<api>", component=None, init_state=None)


def test_deeply_nested_toml_as_the_operators_manifest_is_a_manifest_error(theater, tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ManifestError, match=r"nested too deeply"):
        theater.start(path)


def test_check_limits_accepts_the_maximum_itself():
    manifest = parse_manifest(manifest_text("a", "a.wat", limits={"deadline_ms": 1000}))
    check_limits(manifest, Maximums(deadline_ms=1000))


def test_runtime_maximums_lie_within_the_verifier_maximums():
    # Whatever this runtime accepts by default, a verifier with default settings must accept too: otherwise an
    # honest chain recorded here would be refused by `theater verify` elsewhere.
    runtime, verifier = DEFAULT_MAXIMUMS, ReplayLimits()
    assert runtime.fuel_per_call <= verifier.max_fuel_per_call
    assert runtime.memory_bytes <= verifier.max_memory_bytes
    assert runtime.deadline_ms <= verifier.max_deadline_ms
