"""The supervising test components (``tests.components.supervisor_wat``) compile and match the repo's WIT."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime.component as wc

from replay.boundary import export_functions, import_functions
from replay.engine import Engine
from tests.components import supervisor_wat as sw
from tests.components import wat

WIT_DIR = Path(__file__).resolve().parents[2] / "wit"
WASM_TOOLS = Path(sys.executable).parent / "wasm-tools"
ALL = [sw.spawn(), sw.resume(), sw.list_children(), sw.stop_child(), sw.restart_child(), sw.get_child_state(),
       sw.get_child_events(), sw.append(b"a", wat.PARAM, wat.HEAD)]


@pytest.fixture(scope="module")
def engine():
    made = Engine()
    yield made
    made.close()


def test_the_ready_made_supervisor_imports_supervisor_and_exports_the_handlers(engine):
    component = wc.Component(engine.wasmtime, sw.supervisor_actor())
    assert sorted(import_functions(engine, component)["theater:simple/supervisor"]) == sorted(
        ["spawn", "resume", "list-children", "stop-child", "restart-child", "get-child-state", "get-child-events"]
    )
    exports = export_functions(engine, component)
    assert f"{sw.SUPERVISOR_HANDLERS}.handle-child-error" in exports
    assert f"{sw.SUPERVISOR_HANDLERS}.handle-child-exit" in exports


def test_kit_behaviours_that_import_other_interfaces_can_be_used(engine):
    decide = wat.seq(wat.log(wat.HEAD), sw.restart_child(wat.PARAM))
    text = sw.supervisor_wat(init=wat.log(wat.PARAM), child_error=decide)
    component = wc.Component(engine.wasmtime, text)
    assert "theater:simple/runtime" in import_functions(engine, component)


def test_message_server_false_refuses_message_behaviours():
    with pytest.raises(ValueError):
        sw.supervisor_wat(send=wat.echo(), message_server=False)


@pytest.mark.skipif(not (WIT_DIR / "worlds.wit").exists() or not WASM_TOOLS.exists(),
                    reason="needs the repo's wit/ and the wasm-tools CLI")
def test_a_supervisor_component_targets_the_supervisor_actor_world(tmp_path):
    text = sw.supervisor_wat(init=wat.seq(*ALL), child_error=sw.append(wat.HEAD), message_server=False)
    path = tmp_path / "supervisor.wat"
    path.write_text(text)
    proc = subprocess.run([str(WASM_TOOLS), "component", "targets", str(WIT_DIR), str(path),
                           "--world", "supervisor-actor"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
