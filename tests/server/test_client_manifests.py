"""A client's manifest with ``init_state = { file = ... }`` is recorded as TOML again, with the state inline: any
manifest the server accepts must come back as the same table (the writer is ``tomli_w``)."""

from __future__ import annotations

import base64
import datetime
import tomllib

import pytest

from theater.server.manifests import client_manifest

DIGEST = bytes(range(32))
STATE = b"\x00seed"

RICH = """\
name = "rich"
component = "rich.wasm"
description = "astral \U0001F680, escaped \\U0001F600, BMP \u00e9, quote \\" and tab\\t"
version = "2.0"
init_state = { file = "seed.bin" }
durable = true

[limits]
fuel_per_call = 5_000

[[handlers]]
type = "timing"
config = { max_sleep_ms = 10 }

[[handlers]]
type = "random"
config = { seed = 1979-05-27 }

[[handlers]]
type = "runtime"

[supervision]
period_s = 2.5
restart = "transient"
"""


def _recorded(text: str) -> dict:
    manifest = client_manifest(text, source="m.toml", component=DIGEST, init_state=STATE)
    assert manifest.init_state == STATE
    return tomllib.loads(manifest.source_text)


def test_a_recorded_client_manifest_reads_back_as_the_same_table():
    recorded = _recorded(RICH)
    original = tomllib.loads(RICH)
    assert recorded["init_state"] == {"base64": base64.b64encode(STATE).decode()}
    assert {k: v for k, v in recorded.items() if k != "init_state"} == \
        {k: v for k, v in original.items() if k != "init_state"}


def test_a_description_outside_the_basic_multilingual_plane_survives_an_inline_state():
    recorded = _recorded('name = "a"\ncomponent = "a.wasm"\ndescription = "\U0001F680"\n'
                         'init_state = { file = "s" }\n')
    assert recorded["description"] == "\U0001F680"


def test_arrays_of_tables_with_nested_config_survive_an_inline_state():
    recorded = _recorded(RICH)
    assert [h["type"] for h in recorded["handlers"]] == ["timing", "random", "runtime"]
    assert recorded["handlers"][0]["config"] == {"max_sleep_ms": 10}


@pytest.mark.parametrize("value", [
    "1979-05-27", "1979-05-27T07:32:00Z", "1979-05-27T07:32:00.999-07:00", "1979-05-27T07:32:00", "07:32:00",
])
def test_dates_and_times_survive_an_inline_state(value):
    text = f'name = "a"\ncomponent = "a.wasm"\ninit_state = {{ file = "s" }}\n[[handlers]]\ntype = "random"\n' \
           f'config = {{ seed = {value} }}\n'
    seed = _recorded(text)["handlers"][0]["config"]["seed"]
    assert seed == tomllib.loads(text)["handlers"][0]["config"]["seed"]
    assert isinstance(seed, (datetime.date, datetime.time))


def test_an_original_style_state_file_is_recorded_inline_too():
    recorded = _recorded('name = "a"\ncomponent = "a.wasm"\ninit_state = "seed.json"\n')
    assert recorded["init_state"] == {"base64": base64.b64encode(STATE).decode()}


def test_an_original_style_state_file_without_its_bytes_is_refused_naming_the_field():
    from theater.errors import ManifestError

    with pytest.raises(ManifestError) as caught:
        client_manifest('name = "a"\ncomponent = "a.wasm"\ninit_state = "/etc/hostname"\n', source="m.toml",
                        component=DIGEST, init_state=None)
    assert caught.value.field == "init_state" and "does not read files" in caught.value.problem
