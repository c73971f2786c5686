"""Manifests written in the original Theater's style start and run unchanged where the feature exists; a caller's
state is merged into the manifest's as in the original."""

from __future__ import annotations

import json

from tests.components import wat


def write(directory, name: str, component: str, text: str) -> str:
    (directory / f"{name}.wat").write_text(component)
    path = directory / f"{name}.toml"
    path.write_text(text)
    return str(path)


def test_an_original_style_counter_with_a_state_file_starts_and_runs(theater, tmp_path):
    (tmp_path / "init.json").write_text('{"count": 0, "name": "from the file"}')
    path = write(tmp_path, "counter", wat.actor_wat(request=wat.get_state()), '''
name = "counter"
version = "0.1.0"
description = "A counter, as the original's examples write it"
component_path = "counter.wat"
init_state = "init.json"
save_chain = true

[[handlers]]
type = "message-server"
config = {}
''')
    actor = theater.start(path)
    assert json.loads(theater.request(actor, b"state?")) == {"count": 0, "name": "from the file"}


def test_an_original_style_clock_and_dice_with_their_config_keys_start_and_run(theater, tmp_path):
    component = wat.actor_wat(request=wat.seq(wat.sleep(5), wat.random_bytes(4)))
    path = write(tmp_path, "dice", component, '''
name = "dice"
component_path = "dice.wat"

[[handlers]]
type = "message-server"

[[handlers]]
type = "timing"
config = { max_sleep_duration = 1000, min_sleep_duration = 1 }

[[handlers]]
type = "random"
config = { max_bytes = 16, max_int = 1000, allow_crypto_secure = true }
''')
    actor = theater.start(path)
    assert len(theater.request(actor, b"roll")) == 4


def test_a_callers_state_is_merged_into_the_manifests_the_callers_keys_winning(theater, tmp_path):
    (tmp_path / "init.json").write_text('{"count": 0, "name": "manifest"}')
    path = write(tmp_path, "merged", wat.actor_wat(request=wat.get_state()), '''
name = "merged"
component_path = "merged.wat"
init_state = "init.json"

[[handlers]]
type = "message-server"
''')
    actor = theater.start(path, init_state=b'{"name": "caller", "extra": true}')
    assert json.loads(theater.request(actor, b"?")) == {"count": 0, "extra": True, "name": "caller"}
    resumed = theater.start(path, init_state=b'{"name": "snapshot"}', call_init=False)
    assert json.loads(theater.request(resumed, b"?")) == {"name": "snapshot"}  # a resume takes the state as is


def test_theater_start_uploads_an_original_style_state_file(tmp_path):
    from theater.project import project_files

    (tmp_path / "a.wasm").write_bytes(b"component")
    (tmp_path / "init.json").write_text("{}")
    (tmp_path / "a.toml").write_text('name = "a"\ncomponent_path = "a.wasm"\ninit_state = "init.json"\n')
    assert sorted(project_files(tmp_path / "a.toml")) == ["a.toml", "a.wasm", "init.json"]
