"""Tests of manifest parsing and validation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from theater.errors import ManifestError
from theater.files import FileAccess
from theater.manifest import (
    ComponentRef,
    HandlerSpec,
    Limits,
    Manifest,
    SupervisionSpec,
    check_permissions,
    load_manifest,
    merge_state,
    parse_manifest,
)

HASH = "ab" * 32
MINIMAL = 'name = "counter"\ncomponent = "counter.wasm"\n'

FULL = """
name = "counter"
version = "0.2.0"
description = "Counts messages"
component = "build/counter.wasm"
durable = false
init_state = { json = { count = 0, tags = ["a"] } }

[[handlers]]
type = "message-server"

[[handlers]]
type = "timing"
config = { max_sleep_ms = 1000 }

[limits]
fuel_per_call = 5_000
memory_bytes = 1_048_576
deadline_ms = 100
max_message_bytes = 4096

[supervision]
strategy = "rest_for_one"
intensity = 0
period_s = 0.5
restart = "transient"
backoff_initial_ms = 10
backoff_max_ms = 1000
restart_from = "last_state"
shutdown_timeout_ms = 0
"""


def parse(text: str, **kwargs) -> Manifest:
    return parse_manifest(text, source="actor.toml", **kwargs)


def with_extra(extra: str) -> str:
    return MINIMAL + extra


def test_full_manifest_is_parsed(tmp_path: Path) -> None:
    manifest = parse(FULL, files=FileAccess.trusted(tmp_path))
    assert manifest.name == "counter"
    assert manifest.version == "0.2.0"
    assert manifest.description == "Counts messages"
    assert manifest.component == ComponentRef(kind="path", value=(tmp_path / "build/counter.wasm").resolve())
    assert manifest.durable is False
    assert manifest.init_state == b'{"count":0,"tags":["a"]}'
    assert manifest.handlers == (
        HandlerSpec(type="message-server"),
        HandlerSpec(type="timing", config={"max_sleep_ms": 1000}),
    )
    assert manifest.limits == Limits(
        fuel_per_call=5000, memory_bytes=1_048_576, deadline_ms=100, max_message_bytes=4096
    )
    assert manifest.supervision == SupervisionSpec(
        strategy="rest_for_one",
        intensity=0,
        period_s=0.5,
        restart="transient",
        backoff_initial_ms=10,
        backoff_max_ms=1000,
        restart_from="last_state",
        shutdown_timeout_ms=0,
    )
    assert manifest.granted == {"runtime", "message-server", "timing"}
    assert manifest.source == "actor.toml"
    assert manifest.source_text == FULL


def test_minimal_manifest_gets_defaults() -> None:
    manifest = parse(MINIMAL)
    assert manifest.version == "0.1.0"
    assert manifest.description == ""
    assert manifest.init_state is None
    assert manifest.durable is True
    assert manifest.handlers == ()
    assert manifest.granted == {"runtime"}
    assert manifest.limits == Limits(
        fuel_per_call=1_000_000_000, memory_bytes=256 * 2**20, deadline_ms=30_000, max_message_bytes=2**20
    )
    assert manifest.supervision == SupervisionSpec(
        strategy="one_for_one",
        intensity=3,
        period_s=5.0,
        restart="permanent",
        backoff_initial_ms=0,
        backoff_max_ms=30_000,
        restart_from="init",
        shutdown_timeout_ms=5000,
    )


def test_manifest_records_are_frozen() -> None:
    manifest = parse(MINIMAL)
    with pytest.raises(AttributeError):
        manifest.name = "other"  # type: ignore[misc]


def test_inline_source_is_the_default_source_name() -> None:
    with pytest.raises(ManifestError, match=r"^<inline>: name: required key is missing"):
        parse_manifest('component = "a.wasm"')


def test_load_manifest_resolves_paths_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "state.bin").write_bytes(b"\x00\x01")
    path = tmp_path / "actor.toml"
    path.write_text(with_extra('init_state = { file = "state.bin" }\n'))
    manifest = load_manifest(path)
    assert manifest.source == str(path)
    assert manifest.component == ComponentRef(kind="path", value=(tmp_path / "counter.wasm").resolve())
    assert manifest.init_state == b"\x00\x01"


def test_missing_manifest_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ManifestError, match=rf"^{path}: cannot read the manifest file '{path}': No such file or "):
        load_manifest(path)


def test_non_utf8_manifest_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "actor.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ManifestError, match=r"the manifest is not valid UTF-8"):
        load_manifest(path)


def test_toml_syntax_error_gives_line_and_column() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: invalid TOML: .*\(at line 2, column 7\)$") as info:
        parse('name = "x"\nbad = \n')
    assert info.value.field == ""


# Top-level fields.


def test_unknown_top_level_key_is_rejected() -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: colour: unknown key 'colour'; allowed keys: component, component_path, description, "
        r"durable, handlers, init_state, limits, name, on_err, passivate_after_ms, permission_policy, save_chain, "
        r"supervision, version$",
    ):
        parse(with_extra('colour = "red"\n'))


def test_the_originals_save_chain_true_is_accepted() -> None:
    assert parse(with_extra("save_chain = true\n")).name == "counter"


def test_the_originals_save_chain_false_is_refused_saying_why() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: save_chain: every actor's chain is recorded"):
        parse(with_extra("save_chain = false\n"))


def test_the_originals_permission_policy_is_refused_saying_why() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: permission_policy: not supported: a child's grants"):
        parse(with_extra('[permission_policy]\nhandlers = "inherit"\n'))


def test_missing_name_is_rejected() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: name: required key is missing; expected a non-empty string$"
    ):
        parse('component = "a.wasm"')


@pytest.mark.parametrize(
    ("value", "got"),
    [('""', "an empty string"), ("1", "1"), ("true", "true"), ("[]", "an array"), ("{}", "a table")],
)
def test_name_of_wrong_type_is_rejected(value: str, got: str) -> None:
    with pytest.raises(ManifestError, match=rf"^actor.toml: name: expected a non-empty string, got {got}$"):
        parse(f'name = {value}\ncomponent = "a.wasm"')


def test_name_with_bad_characters_is_rejected() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: name: expected only letters, digits, '_', '.' or '-', got 'my actor'$"
    ):
        parse('name = "my actor"\ncomponent = "a.wasm"')


def test_name_with_dots_dashes_and_underscores_is_accepted() -> None:
    assert parse('name = "a.b-c_D9"\ncomponent = "a.wasm"').name == "a.b-c_D9"


def test_version_must_be_a_string() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: version: expected a non-empty string, got 2$"):
        parse(with_extra("version = 2\n"))


def test_description_must_be_a_string() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: description: expected a string, got false$"):
        parse(with_extra("description = false\n"))


def test_durable_must_be_a_boolean() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: durable: expected true or false, got 'yes'$"):
        parse(with_extra('durable = "yes"\n'))


def test_date_values_are_shown_as_dates() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: version: expected a non-empty string, got a date/time \(1979-05-27\)$"
    ):
        parse(with_extra("version = 1979-05-27\n"))


# Component references.


def test_component_without_base_dir_stays_relative() -> None:
    assert parse(MINIMAL).component == ComponentRef(kind="path", value=Path("counter.wasm"))
    assert parse(MINIMAL, files=FileAccess.trusted()).component == ComponentRef(kind="path", value=Path("counter.wasm"))


def test_absolute_component_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "x.wasm"
    manifest = parse(f'name = "a"\ncomponent = "{target}"', files=FileAccess.trusted(Path("/elsewhere")))
    assert manifest.component == ComponentRef(kind="path", value=target.resolve())


def test_component_path_alias_is_accepted(tmp_path: Path) -> None:
    manifest = parse('name = "a"\ncomponent_path = "a.wasm"', files=FileAccess.trusted(tmp_path))
    assert manifest.component == ComponentRef(kind="path", value=(tmp_path / "a.wasm").resolve())


def test_component_and_component_path_together_are_rejected() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: component: give either 'component' or its alias 'component_path', not both$"
    ):
        parse('name = "a"\ncomponent = "a.wasm"\ncomponent_path = "b.wasm"')


def test_missing_component_is_rejected() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: component: required key is missing; expected a non-empty string$"
    ):
        parse('name = "a"')


def test_component_alias_errors_name_the_alias() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: component_path: expected a non-empty string, got 7$"):
        parse('name = "a"\ncomponent_path = 7')


def test_component_hash_is_parsed_to_a_digest() -> None:
    manifest = parse(f'name = "a"\ncomponent = "{HASH.upper()}"')
    assert manifest.component == ComponentRef(kind="hash", value=bytes.fromhex(HASH))
    assert len(manifest.component.value) == 32


def test_hex_string_of_wrong_length_is_a_path() -> None:
    assert parse(f'name = "a"\ncomponent = "{HASH[:-1]}"').component.kind == "path"


def test_component_label_is_parsed() -> None:
    manifest = parse('name = "a"\ncomponent = "store:counter-v2"')
    assert manifest.component == ComponentRef(kind="label", value="counter-v2")


def test_component_ref_gives_its_value_typed_for_its_kind() -> None:
    assert ComponentRef(kind="path", value=Path("a.wasm")).path == Path("a.wasm")
    assert ComponentRef(kind="hash", value=bytes.fromhex(HASH)).digest == bytes.fromhex(HASH)
    assert ComponentRef(kind="label", value="counter-v2").label == "counter-v2"
    with pytest.raises(TypeError, match="a label component reference has no digest"):
        _ = ComponentRef(kind="label", value="counter-v2").digest


def test_component_ref_refuses_a_value_of_another_kind() -> None:
    with pytest.raises(TypeError, match="a hash component reference holds a str"):
        ComponentRef(kind="hash", value=HASH)
    with pytest.raises(TypeError, match="a path component reference holds a bytes"):
        ComponentRef(kind="path", value=bytes.fromhex(HASH))


def test_empty_component_label_is_rejected() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: component: expected a label after 'store:', got 'store:'$"):
        parse('name = "a"\ncomponent = "store:"')


# init_state.


def test_init_state_string_names_a_file_next_to_the_manifest_as_in_the_original(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_bytes(b'{"count": 3}')
    manifest = parse(with_extra('init_state = "state.json"\n'), files=FileAccess.trusted(tmp_path))
    assert manifest.init_state == b'{"count": 3}'


def test_init_state_literal_string_is_refused_saying_how_to_inline_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        parse(with_extra("init_state = '{\"n\": 1}'\n"), files=FileAccess.trusted(tmp_path))
    assert caught.value.field == "init_state"
    assert "names a file, as in the original Theater (literal state: { json = ... }" in caught.value.problem


def test_init_state_string_from_a_store_label_is_refused_saying_so(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="a state from a store label is not supported"):
        parse(with_extra('init_state = "store:seed"\n'), files=FileAccess.trusted(tmp_path))


def test_init_state_string_naming_a_file_is_refused_without_file_access() -> None:
    with pytest.raises(ManifestError) as caught:
        parse(with_extra('init_state = "/etc/hostname"\n'))
    assert caught.value.field == "init_state"


@pytest.mark.parametrize(("ours", "theirs", "started"), [
    (b'{"a": 1, "b": 2}', b'{"b": 3, "c": 4}', b'{"a":1,"b":3,"c":4}'),
    (b'{"a": 1}', b"not json", b"not json"),
    (b"[1]", b'{"a": 1}', b'{"a": 1}'),
    (None, b'{"a": 1}', b'{"a": 1}'),
    (b'{"a": 1}', None, b'{"a": 1}'),
])
def test_a_callers_state_is_merged_into_the_manifests_when_both_are_json_objects(ours, theirs, started) -> None:
    assert merge_state(ours, theirs) == started


def test_init_state_json_table_is_encoded_compactly_with_sorted_keys() -> None:
    text = with_extra('[init_state.json]\nb = 1\na = [true, 1.5, "x"]\n')
    assert parse(text).init_state == b'{"a":[true,1.5,"x"],"b":1}'


def test_init_state_json_rejects_dates() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: init_state.json: expected a value JSON can hold"):
        parse(with_extra("init_state = { json = { at = 1979-05-27 } }\n"))


def test_init_state_json_rejects_nan() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: init_state.json: expected a value JSON can hold"):
        parse(with_extra("init_state = { json = nan }\n"))


def test_init_state_base64_is_decoded() -> None:
    encoded = base64.b64encode(b"\x00\xffstate").decode()
    assert parse(with_extra(f'init_state = {{ base64 = "{encoded}" }}\n')).init_state == b"\x00\xffstate"


def test_init_state_bad_base64_is_rejected() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: init_state.base64: expected base64 text: "):
        parse(with_extra('init_state = { base64 = "***" }\n'))


def test_init_state_file_is_read_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_bytes(b'{"count": 3}')
    manifest = parse(with_extra('init_state = { file = "state.json" }\n'), files=FileAccess.trusted(tmp_path))
    assert manifest.init_state == b'{"count": 3}'


def test_init_state_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: init_state.file: cannot read the state file 'gone.json': No such file or directory$",
    ):
        parse(with_extra('init_state = { file = "gone.json" }\n'), files=FileAccess.trusted(tmp_path))


def test_init_state_file_is_refused_without_file_access(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_bytes(b"{}")
    with pytest.raises(
        ManifestError, match=r"^actor.toml: init_state.file: a manifest from .* may not name a file on the host",
    ):
        parse(with_extra(f'init_state = {{ file = "{tmp_path / "state.json"}" }}\n'))


def test_init_state_absolute_file_needs_no_base_dir(tmp_path: Path) -> None:
    (tmp_path / "s").write_bytes(b"abc")
    manifest = parse(with_extra(f'init_state = {{ file = "{tmp_path / "s"}" }}\n'), files=FileAccess.trusted())
    assert manifest.init_state == b"abc"


def test_init_state_of_wrong_type_is_rejected() -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: init_state: expected a string or a table with one of 'file', 'json' or 'base64', got 3$",
    ):
        parse(with_extra("init_state = 3\n"))


def test_init_state_table_with_two_sources_is_rejected() -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: init_state: expected exactly one of 'file', 'json' or 'base64', got 'file', 'json'$",
    ):
        parse(with_extra('init_state = { file = "a", json = 1 }\n'))


def test_init_state_empty_table_is_rejected() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: init_state: .* got an empty table$"):
        parse(with_extra("init_state = {}\n"))


def test_init_state_unknown_key_is_rejected() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: init_state.text: unknown key 'text'; allowed keys: base64, file, json$"
    ):
        parse(with_extra('init_state = { text = "a" }\n'))


# Handlers.


def test_handler_config_is_kept_as_a_plain_dict() -> None:
    manifest = parse(with_extra('[[handlers]]\ntype = "store"\n[handlers.config]\nroot = "data"\nlimit = 3\n'))
    assert manifest.handlers == (HandlerSpec(type="store", config={"root": "data", "limit": 3}),)
    assert type(manifest.handlers[0].config) is dict


def test_listing_the_runtime_handler_is_allowed() -> None:
    assert parse(with_extra('[[handlers]]\ntype = "runtime"\n')).granted == {"runtime"}


def test_unknown_handler_type_is_rejected() -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: handlers\[1\].type: expected one of environment, filesystem, http-client, "
        r"http-framework, message-server, process, random, runtime, store, supervisor, timing, got 'telepathy'$",
    ):
        parse(with_extra('[[handlers]]\ntype = "timing"\n[[handlers]]\ntype = "telepathy"\n'))


def test_handler_type_of_wrong_type_is_rejected() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: handlers\[0\].type: expected one of .*, got a table$"):
        parse(with_extra("[[handlers]]\ntype = {}\n"))


def test_handler_without_type_is_rejected() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: handlers\[0\].type: required key is missing; expected a handler type$"
    ):
        parse(with_extra("[[handlers]]\nconfig = {}\n"))


def test_duplicate_handler_type_is_rejected() -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: handlers\[2\].type: duplicate handler type 'timing', already given as handlers\[0\]$",
    ):
        parse(with_extra("".join(f'[[handlers]]\ntype = "{h}"\n' for h in ("timing", "random", "timing"))))


def test_unknown_handler_key_is_rejected() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: handlers\[0\].settings: unknown key 'settings'; allowed keys: config, type$"
    ):
        parse(with_extra('[[handlers]]\ntype = "timing"\nsettings = {}\n'))


def test_handler_config_must_be_a_table() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: handlers\[0\].config: expected a table, got 'fast'$"):
        parse(with_extra('[[handlers]]\ntype = "timing"\nconfig = "fast"\n'))


def test_handlers_must_be_an_array_of_tables() -> None:
    with pytest.raises(
        ManifestError, match=r"^actor.toml: handlers: expected an array of tables \(\[\[handlers\]\]\), got 'timing'$"
    ):
        parse(with_extra('handlers = "timing"\n'))


def test_handler_entry_must_be_a_table() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: handlers\[0\]: expected a table, got 'timing'$"):
        parse(with_extra('handlers = ["timing"]\n'))


# Limits.


@pytest.mark.parametrize("key", ["fuel_per_call", "memory_bytes", "deadline_ms", "max_message_bytes"])
@pytest.mark.parametrize(("value", "got"), [("-5", "-5"), ("0", "0"), ("true", "true"), ("1.5", "1.5"), ('"9"', "'9'")])
def test_limit_that_is_not_a_positive_integer_is_rejected(key: str, value: str, got: str) -> None:
    with pytest.raises(ManifestError, match=rf"^actor.toml: limits.{key}: expected a positive integer, got {got}$"):
        parse(with_extra(f"[limits]\n{key} = {value}\n"))


def test_unknown_limit_is_rejected() -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: limits.fuel: unknown key 'fuel'; allowed keys: deadline_ms, fuel_per_call, "
        r"max_message_bytes, memory_bytes$",
    ):
        parse(with_extra("[limits]\nfuel = 5\n"))


def test_limits_must_be_a_table() -> None:
    with pytest.raises(ManifestError, match=r"^actor.toml: limits: expected a table, got 5$"):
        parse(with_extra("limits = 5\n"))


# Supervision.


@pytest.mark.parametrize(
    ("key", "options"),
    [
        ("strategy", "'one_for_one', 'one_for_all', 'rest_for_one'"),
        ("restart", "'permanent', 'transient', 'temporary'"),
        ("restart_from", "'init', 'last_state'"),
    ],
)
@pytest.mark.parametrize(("value", "got"), [('"sometimes"', "'sometimes'"), ("1", "1")])
def test_supervision_choice_outside_its_options_is_rejected(key: str, options: str, value: str, got: str) -> None:
    with pytest.raises(ManifestError, match=rf"^actor.toml: supervision.{key}: expected one of {options}, got {got}$"):
        parse(with_extra(f"[supervision]\n{key} = {value}\n"))


@pytest.mark.parametrize(
    ("key", "expected"),
    [("intensity", "an integer >= 0"), *((k, "an integer from 0 to 86400000")
                                         for k in ("backoff_initial_ms", "backoff_max_ms", "shutdown_timeout_ms"))],
)
@pytest.mark.parametrize(("value", "got"), [("-1", "-1"), ("false", "false"), ("2.0", "2.0")])
def test_supervision_count_that_is_not_a_non_negative_integer_is_rejected(
    key: str, expected: str, value: str, got: str
) -> None:
    with pytest.raises(ManifestError, match=rf"^actor.toml: supervision.{key}: expected {expected}, got {got}$"):
        parse(with_extra(f"[supervision]\n{key} = {value}\n"))


@pytest.mark.parametrize("key", ["backoff_initial_ms", "backoff_max_ms", "shutdown_timeout_ms"])
def test_supervision_duration_longer_than_a_day_is_rejected(key: str) -> None:
    """2**63 ms once reached Python's timers and overflowed there, on the supervisor's thread."""
    with pytest.raises(
        ManifestError, match=rf"^actor.toml: supervision.{key}: expected an integer from 0 to 86400000, got {2**63}$"
    ):
        parse(with_extra(f"[supervision]\n{key} = {2**63}\nbackoff_max_ms = 86400000\n"
                         if key == "backoff_initial_ms" else f"[supervision]\n{key} = {2**63}\n"))


@pytest.mark.parametrize(
    ("value", "got"),
    [("0", "0"), ("-1.5", "-1.5"), ("inf", "inf"), ("nan", "nan"), ("true", "true"), ("86401", "86401")],
)
def test_supervision_period_that_is_not_a_positive_number_is_rejected(value: str, got: str) -> None:
    with pytest.raises(
        ManifestError, match=rf"^actor.toml: supervision.period_s: expected a positive number up to 86400, got {got}$"
    ):
        parse(with_extra(f"[supervision]\nperiod_s = {value}\n"))


def test_supervision_integer_period_becomes_a_float() -> None:
    assert parse(with_extra("[supervision]\nperiod_s = 2\n")).supervision.period_s == 2.0


def test_backoff_max_below_backoff_initial_is_rejected() -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: supervision.backoff_max_ms: expected at least backoff_initial_ms \(500\), got 100$",
    ):
        parse(with_extra("[supervision]\nbackoff_initial_ms = 500\nbackoff_max_ms = 100\n"))


def test_unknown_supervision_key_is_rejected() -> None:
    with pytest.raises(
        ManifestError,
        match=r"^actor.toml: supervision.max_restarts: unknown key 'max_restarts'; allowed keys: backoff_initial_ms, "
        r"backoff_max_ms, children, intensity, period_s, restart, restart_from, shutdown_timeout_ms, strategy$",
    ):
        parse(with_extra("[supervision]\nmax_restarts = 3\n"))


# Permissions.


def manifest_with(name: str, *handlers: str) -> Manifest:
    entries = "".join(f'[[handlers]]\ntype = "{h}"\n' for h in handlers)
    return parse_manifest(f'name = "{name}"\ncomponent = "a.wasm"\n{entries}', source=f"{name}.toml")


def test_child_with_a_subset_of_the_parents_handlers_is_permitted() -> None:
    parent = manifest_with("parent", "supervisor", "timing", "random")
    check_permissions(manifest_with("child", "timing"), parent)
    check_permissions(manifest_with("bare"), parent)


def test_child_may_list_runtime_under_any_parent() -> None:
    check_permissions(manifest_with("child", "runtime"), manifest_with("parent"))


def test_child_asking_for_more_than_its_parent_is_refused() -> None:
    parent = manifest_with("parent", "supervisor", "timing")
    child = manifest_with("child", "timing", "http-client", "filesystem")
    with pytest.raises(
        ManifestError,
        match=r"^child.toml: handlers: 'child' asks for handler types its parent 'parent' was not granted: "
        r"filesystem, http-client; a child's permissions cannot exceed its parent's$",
    ) as info:
        check_permissions(child, parent)
    assert (info.value.source, info.value.field) == ("child.toml", "handlers")
