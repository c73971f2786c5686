"""Fuzzing manifests: whatever the structure or the text, ``parse_manifest`` returns a Manifest or raises
ManifestError, never anything else (no TypeError, KeyError, RecursionError, UnicodeError, OverflowError ...)."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from theater.errors import ManifestError
from theater.files import FileAccess
from theater.manifest import Manifest, parse_manifest

TOP_KEYS = ["name", "version", "description", "component", "component_path", "init_state", "durable", "handlers",
            "limits", "supervision"]
NESTED_KEYS = ["type", "config", "file", "json", "base64", "fuel_per_call", "memory_bytes", "deadline_ms",
               "max_message_bytes", "strategy", "intensity", "period_s", "restart", "backoff_initial_ms",
               "backoff_max_ms", "restart_from", "shutdown_timeout_ms", "children", "worker"]
STRINGS = ["counter", "a.wasm", "store:x", "ab" * 32, "../x", "/etc/passwd", "/dev/zero", "message-server",
           "supervisor", "one_for_all", "permanent", "last_state", "init", "AAAA", "", "\x00", "é"]

keys = st.one_of(st.sampled_from(TOP_KEYS + NESTED_KEYS), st.text(max_size=8))
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(STRINGS),
    st.text(max_size=12),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, datetime.timezone.utc])),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
manifests = st.dictionaries(keys, values, max_size=10)


def toml_key(key: str) -> str:
    return json.dumps(key)


def toml_value(value: Any) -> str:
    """A value as inline TOML (strings as JSON strings, which TOML reads the same)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def render(data: dict[str, Any]) -> str:
    return "".join(f"{toml_key(key)} = {toml_value(value)}\n" for key, value in data.items())


def parse_any(text: str, files: FileAccess) -> None:
    try:
        manifest = parse_manifest(text, source="fuzz.toml", files=files)
    except ManifestError:
        return
    assert isinstance(manifest, Manifest)


ACCESSES = st.sampled_from(["none", "recorded", "confined"])


def access(kind: str, root: Path) -> FileAccess:
    """No file access, the record's, or confined to an empty directory (so nothing real is ever read)."""
    if kind == "none":
        return FileAccess.none("the fuzzer")
    if kind == "recorded":
        return FileAccess.recorded()
    return FileAccess.confined(root)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=manifests, kind=ACCESSES)
def test_any_manifest_structure_parses_or_is_a_manifest_error(tmp_path, data, kind):
    parse_any(render(data), access(kind, tmp_path))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(STRINGS + ["ok"]), component=st.sampled_from(STRINGS),
    rest=st.dictionaries(st.sampled_from(TOP_KEYS[2:]), values, max_size=6), kind=ACCESSES,
)
def test_manifests_with_a_name_and_component_parse_or_are_manifest_errors(tmp_path, name, component, rest, kind):
    """The same, starting from the required keys so the deeper fields are reached."""
    parse_any(render({"name": name, "component": component, **rest}), access(kind, tmp_path))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200), kind=ACCESSES)
def test_any_text_parses_or_is_a_manifest_error(tmp_path, text, kind):
    parse_any(text, access(kind, tmp_path))


@given(depth=st.integers(min_value=1, max_value=20_000), opener=st.sampled_from(["[", "{a = "]))
def test_any_nesting_depth_parses_or_is_a_manifest_error(depth, opener):
    closer = "]" if opener == "[" else "}"
    text = f'name = "a"\ncomponent = "a.wat"\ninit_state = {{ json = {opener * depth}1{closer * depth} }}\n'
    parse_any(text, FileAccess.none("the fuzzer"))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.one_of(st.sampled_from(STRINGS), st.text(max_size=20)), field=st.sampled_from(["component", "state"]),
       kind=ACCESSES)
def test_any_file_name_parses_or_is_a_manifest_error(tmp_path, name, field, kind):
    """File names reach the filesystem layer (NUL bytes, '..', absolute, empty): only ManifestError comes back."""
    data = {"name": "a", "component": name} if field == "component" else {
        "name": "a", "component": "store:x", "init_state": {"file": name}}
    parse_any(render(data), access(kind, tmp_path))
