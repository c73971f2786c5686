"""Attacks on the host's files through manifests: a guest (through its supervisor), an API client and the operator.

A canary file sits outside the directory of the operator's manifest, readable by the runtime. Every way a guest
can name it (absolute, ``..``, a symlink out, ``/proc/self/...``, as component, as init_state, as the manifest
itself) is refused; afterwards the canary's bytes are in no chain event, no blob, no label, no error and no log.
Files the operator names are read only when regular and within the runtime's size maximums.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest

from replay.engine import Engine
from replay.errors import ComponentError
from store import Store, blob_digest
from tests._chains import chain_problems
from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.components.wat import ERR_MARKER
from theater import components
from theater.errors import ManifestError
from theater.files import FileAccess
from theater.manifest import Maximums, load_manifest, parse_manifest
from theater.runtime import Theater
from theater.server.manifests import client_manifest

CANARY = b"theater-canary-5d1e8a0c-do-not-leak\n"
INSIDE = b"inside-secret-93b7-not-a-component\n"
SUPERVISOR = '[[handlers]]\ntype = "message-server"\n[[handlers]]\ntype = "supervisor"\n'
MSG = '[[handlers]]\ntype = "message-server"\n'


class Lab:
    """A runtime whose supervisor actor was started by the operator from ``actors/sup.toml``; a canary outside.

    Layout under the test's directory::

        outside/canary.txt     the canary
        outside/evil.toml      a manifest naming the canary by a path relative to itself
        actors/sup.toml        the operator's supervisor (message-server, supervisor)
        actors/worker.wat      a worker component, and actors/worker.toml its manifest
        actors/state.bin       a state file the guest may name
        actors/notes.txt       a file inside the directory that is not a component
        actors/to-canary.txt   -> outside/canary.txt          actors/to-outside -> outside/
        actors/to-evil.toml    -> outside/evil.toml           actors/to-worker.wat -> actors/worker.wat
        actors/fifo            a fifo
    """

    def __init__(self, root: Path, maximums: Maximums = Maximums()) -> None:
        self.root = root
        outside = root / "outside"
        outside.mkdir()
        self.canary = outside / "canary.txt"
        self.canary.write_bytes(CANARY)
        self.evil = outside / "evil.toml"
        self.evil.write_text('name = "evil"\ncomponent = "store:worker"\ninit_state = { file = "canary.txt" }\n')
        self.actors = actors = root / "actors"
        actors.mkdir()
        (actors / "sup.wat").write_text(sw.supervisor_actor())
        (actors / "sup.toml").write_text(f'name = "sup"\ncomponent = "sup.wat"\n{SUPERVISOR}')
        (actors / "worker.wat").write_text(wat.echo_actor())
        (actors / "worker.toml").write_text(f'name = "worker"\ncomponent = "worker.wat"\n{MSG}')
        (actors / "state.bin").write_bytes(b"\x00allowed state")
        (actors / "notes.txt").write_bytes(INSIDE)
        (actors / "to-canary.txt").symlink_to(self.canary)
        (actors / "to-outside").symlink_to(outside, target_is_directory=True)
        (actors / "to-evil.toml").symlink_to(self.evil)
        (actors / "to-worker.wat").symlink_to(actors / "worker.wat")
        os.mkfifo(actors / "fifo")
        self.theater = Theater(root / "home", durability="buffered", request_timeout=5.0, maximums=maximums)
        self.theater.store.blobs.set_label("worker", self.theater.store.blobs.put(wat.echo_actor().encode()))
        self.sup = self.theater.start(actors / "sup.toml")

    def spawn(self, manifest: str | Path, parent: str | None = None) -> bytes:
        """What the supervisor's ``spawn`` answered: a child id or ``ERR_MARKER + error``."""
        return self.theater.request(parent or self.sup, b"spawn\0" + str(manifest).encode())

    def refused(self, manifest: str | Path, parent: str | None = None) -> str:
        """Spawn, expect a refusal without the canary in it, and return the error text."""
        answer = self.spawn(manifest, parent)
        assert answer.startswith(ERR_MARKER), answer
        assert CANARY.strip() not in answer and INSIDE.strip() not in answer
        return answer.removeprefix(ERR_MARKER).decode()

    def children(self, parent: str | None = None) -> bytes:
        return self.theater.request(parent or self.sup, b"list\0")


def leaks(theater: Theater, secret: bytes) -> list[str]:
    """Every place in the home's store that holds ``secret`` (raw or as hex): blobs, labels, chain events."""
    forms = [secret.strip(), secret.strip().hex().encode(), secret[:4].hex().encode()]
    found: list[str] = []
    blobs = theater.store.blobs
    for digest in blobs:
        if any(form in blobs.get(digest) for form in forms):
            found.append(f"blob {digest.hex()}")
    found += [f"label {name}" for name, _ in blobs.labels() if any(form in name.encode() for form in forms)]
    for actor, _ in theater.store.log.actors():
        for event in theater.store.log.events(actor):
            if any(form in cbor2.dumps(event.data) for form in forms):
                found.append(f"event {actor}/{event.seq} ({event.type})")
    return found


@pytest.fixture
def lab(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Lab]:
    """The lab; afterwards no canary anywhere (store, logs) and every chain verifies and replays."""
    caplog.set_level(logging.DEBUG)
    made = Lab(tmp_path)
    try:
        yield made
        made.theater.request(made.sup, b"list\0")  # everything before this is handled and durable
        found = leaks(made.theater, CANARY) + leaks(made.theater, INSIDE)
        problems = chain_problems(made.theater.store)
    finally:
        made.theater.close()
    assert found == [], f"the canary leaked into: {found}"
    assert CANARY.strip().decode() not in caplog.text and INSIDE.strip().decode() not in caplog.text
    assert problems == []


def inline(component: str = "store:worker", state_file: str | None = None) -> str:
    state = "" if state_file is None else f"init_state = {{ file = {state_file!r} }}\n"
    return f'name = "child"\ncomponent = {component!r}\n{state}{MSG}'


# A guest's manifest naming a file outside its tree's manifest directory.


def test_guest_manifest_cannot_read_host_file_as_init_state_by_absolute_path(lab):
    error = lab.refused(inline(state_file=str(lab.canary)))
    assert "init_state.file" in error and "is an absolute path" in error
    assert lab.children() == b""


def test_guest_manifest_cannot_read_host_file_as_init_state_through_dotdot(lab):
    assert "has a '..' component" in lab.refused(inline(state_file="../outside/canary.txt"))
    assert "has a '..' component" in lab.refused(inline(state_file="to-outside/../state.bin"))


@pytest.mark.parametrize("name", ["to-canary.txt", "to-outside/canary.txt"])
def test_guest_manifest_cannot_read_host_file_as_init_state_through_a_symlink_out(lab, name):
    assert "leads out of it" in lab.refused(inline(state_file=name))


def test_guest_manifest_naming_a_symlink_loop_is_refused_as_an_error_to_the_guest(lab):
    (lab.actors / "loop-a").symlink_to(lab.actors / "loop-b")
    (lab.actors / "loop-b").symlink_to(lab.actors / "loop-a")
    assert "leads into a symlink loop" in lab.refused(inline(state_file="loop-a"))
    assert "leads into a symlink loop" in lab.refused(inline(component="loop-b"))
    assert lab.children() == b""  # the supervisor answers on: the loop was its err, not a host fault


def test_guest_manifest_cannot_read_proc_self_environ(lab):
    environ = Path("/proc/self/environ").read_bytes()[:48]
    assert "is an absolute path" in lab.refused(inline(state_file="/proc/self/environ"))
    assert "is an absolute path" in lab.refused(inline(component="/proc/self/environ"))
    if environ:
        assert leaks(lab.theater, environ) == []


def test_guest_manifest_cannot_make_the_host_open_a_fifo(lab):
    """Opening a fifo for reading would block until a writer comes: it is refused before it is opened."""
    assert "not a regular file (it is a fifo)" in lab.refused(inline(state_file="fifo"))
    assert "not a regular file (it is a fifo)" in lab.refused(inline(component="fifo"))


@pytest.mark.parametrize(
    "name", ["{canary}", "../outside/canary.txt", "to-canary.txt", "to-outside/canary.txt", "/dev/zero"]
)
def test_guest_manifest_cannot_name_a_host_file_as_its_component(lab, name):
    error = lab.refused(inline(component=name.format(canary=lab.canary)))
    assert "component" in error and "inside its tree's manifest directory" in error


@pytest.mark.parametrize("name", ["{evil}", "../outside/evil.toml", "to-evil.toml", "to-outside/evil.toml"])
def test_guest_cannot_name_a_manifest_file_outside_its_tree(lab, name):
    """The manifest argument itself follows the rule: else its own relative paths would lead anywhere."""
    assert "inside its tree's manifest directory" in lab.refused(name.format(evil=lab.evil))


def test_guest_cannot_have_the_canary_parsed_as_its_manifest(lab):
    assert "is an absolute path" in lab.refused(str(lab.canary))
    assert "leads out of it" in lab.refused("to-canary.txt")


def test_a_stored_manifest_from_a_guest_is_held_to_the_same_rule(lab):
    digest = lab.theater.store.blobs.put(inline(state_file=str(lab.canary)).encode())
    assert "is an absolute path" in lab.refused(digest.hex())


def test_guest_manifest_may_name_files_inside_its_tree_directory(lab):
    """The rule refuses what leads out, not what stays in: a relative path, a symlink within, a subdirectory."""
    child = lab.spawn(inline(component="to-worker.wat", state_file="state.bin")).decode()
    assert lab.theater.state(child) == b"\x00allowed state"
    assert lab.theater.actor(lab.spawn("worker.toml").decode()).name == "worker"
    sub = lab.actors / "sub"
    sub.mkdir()
    (sub / "w.wat").write_text(wat.echo_actor())
    (sub / "w.toml").write_text(f'name = "w"\ncomponent = "w.wat"\n{MSG}')
    assert lab.theater.actor(lab.spawn("sub/w.toml").decode()).name == "w"


def test_a_subdirectory_manifest_cannot_climb_back_out(lab):
    sub = lab.actors / "sub"
    sub.mkdir()
    (sub / "up.toml").write_text(inline(state_file="../../outside/canary.txt"))
    assert "has a '..' component" in lab.refused("sub/up.toml")


# Errors never quote what a file holds.


def test_a_non_component_file_is_refused_without_quoting_it(lab):
    error = lab.refused(inline(component="notes.txt"))
    assert "is not a usable component: neither a WebAssembly binary" in error
    assert not lab.theater.store.blobs.has(blob_digest(INSIDE))


def test_a_component_text_error_names_the_place_not_the_source_line(lab):
    (lab.actors / "broken.wat").write_bytes(b"(component " + INSIDE.strip() + b")")
    error = lab.refused(inline(component="broken.wat"))
    assert "is not a usable component: expected" in error and "<anon>:1:" in error


def test_a_bad_binary_error_does_not_echo_its_bytes(lab):
    (lab.actors / "bad.wasm").write_bytes(b"\0asm" + INSIDE)
    error = lab.refused(inline(component="bad.wasm"))
    assert "unknown binary version: 0x…" in error and INSIDE[:4].hex() not in error


@pytest.mark.parametrize(
    "data",
    [b"(component SECRET)", b'(component "SECRET', "(component \u20acSECRET)".encode(), b"(component $SECRET $X)",
     b'(component (import "SECRET NAME" (func)))', b"(component (core module (func call $SECRET)))",
     b"\0asmSECRET", b"\0asm\x01\x00\x00\x00SECRET", b"SECRET", b"(component (core module (func)))SECRET"],
)
def test_no_compile_error_quotes_the_bytes(tmp_path, data):
    store = Store(tmp_path / "store")
    try:
        with pytest.raises(ComponentError) as caught:
            components.load_new(Engine(), store, data, what="component")
        assert list(store.blobs) == []  # never stored: it does not compile
    finally:
        store.close()
    message = str(caught.value)
    assert "SECRET" not in message and "20ac" not in message and "€" not in message
    assert "534543524554" not in message.lower()  # nor as hex


def test_the_operator_gets_a_component_error_without_the_files_content(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(CANARY)
    (tmp_path / "a.toml").write_text('name = "a"\ncomponent = "notes.txt"\n')
    with Theater(tmp_path / "home", durability="buffered") as theater:
        with pytest.raises(ComponentError, match="neither a WebAssembly binary") as caught:
            theater.start(tmp_path / "a.toml")
        assert CANARY.strip().decode() not in str(caught.value)
        assert leaks(theater, CANARY) == []


# Trees that did not start from the operator's file name no files at all.


def test_a_guest_started_by_an_api_client_names_no_files(lab):
    text = f'name = "api-sup"\ncomponent = "sup.wat"\n{SUPERVISOR}'
    digest = lab.theater.store.blobs.put(sw.supervisor_actor().encode())
    api_sup = lab.theater.start(client_manifest(text, source="<api>", component=digest, init_state=None))
    assert "a manifest from actor" in lab.refused("worker.toml", api_sup)
    assert "may not name a file on the host" in lab.refused(inline(state_file="state.bin"), api_sup)
    assert "may not name a file on the host" in lab.refused(inline(component="worker.wat"), api_sup)
    assert lab.spawn(inline(), api_sup).count(b"-") == 4  # by store label it works


def test_a_reopened_guest_names_no_files(tmp_path):
    made = Lab(tmp_path)
    home, sup = made.theater.home, made.sup
    made.theater.close()
    with Theater(home, durability="buffered", request_timeout=5.0) as theater:
        theater.reopen(sup)
        answer = theater.request(sup, b"spawn\0worker.toml")
        assert answer.startswith(ERR_MARKER) and b"may not name a file on the host" in answer


def test_an_api_clients_manifest_names_no_server_files(lab):
    with pytest.raises(ManifestError, match="the server does not read files"):
        client_manifest(inline(component=str(lab.canary)), source="<api>", component=None, init_state=None)
    with pytest.raises(ManifestError, match="init_state.file: the server does not read files"):
        client_manifest(inline(state_file=str(lab.canary)), source="<api>", component=None, init_state=None)


# The operator's files: read only when regular, and never past the maximums.


def operator_manifest(directory: Path, component: str, state_file: str | None = None) -> Path:
    path = directory / "op.toml"
    state = "" if state_file is None else f"init_state = {{ file = {state_file!r} }}\n"
    path.write_text(f'name = "op"\ncomponent = {component!r}\n{state}')
    return path


@pytest.fixture
def operator(tmp_path: Path) -> Iterator[Theater]:
    with Theater(tmp_path / "home", durability="buffered") as theater:
        yield theater


def test_dev_zero_as_a_component_is_refused_without_reading_it(operator, tmp_path):
    with pytest.raises(ManifestError, match=r"component: cannot read the component file '/dev/zero': it is not a "
                                            r"regular file \(it is a character device\)"):
        operator.start(operator_manifest(tmp_path, "/dev/zero"))


def test_dev_zero_as_a_state_file_is_refused_without_reading_it(operator, tmp_path):
    (tmp_path / "w.wat").write_text(wat.echo_actor())
    with pytest.raises(ManifestError, match=r"init_state.file: cannot read the state file '/dev/zero': it is not a "
                                            r"regular file \(it is a character device\)"):
        operator.start(operator_manifest(tmp_path, "w.wat", "/dev/zero"))


def test_a_fifo_as_the_operators_component_is_refused_without_blocking(operator, tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ManifestError, match=r"it is not a regular file \(it is a fifo\)"):
        operator.start(operator_manifest(tmp_path, "pipe"))


def test_a_component_file_over_the_maximum_is_refused_without_reading_it(operator, tmp_path):
    """A 2 GB file once took 16.8 GB of memory and became a blob; now its size alone refuses it (sparse here)."""
    big = tmp_path / "big.wasm"
    with big.open("wb") as f:
        f.truncate(2 * 1024**3)
    with pytest.raises(ManifestError, match=r"holds 2147483648 bytes, more than the maximum of 268435456"):
        operator.start(operator_manifest(tmp_path, "big.wasm"))
    assert list(operator.store.blobs) == []


def test_file_maximums_are_the_operators_to_set(tmp_path):
    (tmp_path / "w.wat").write_text(wat.echo_actor())
    (tmp_path / "s.bin").write_bytes(b"x" * 65)
    small = Maximums(component_file_bytes=64, state_file_bytes=64, manifest_file_bytes=64)
    with Theater(tmp_path / "home", durability="buffered", maximums=small) as theater:
        with pytest.raises(ManifestError, match=r"component file .*more than the maximum of 64"):
            theater.start(operator_manifest(tmp_path, "w.wat"))
        with pytest.raises(ManifestError, match=r"state file 's.bin'.*more than the maximum of 64"):
            theater.start(operator_manifest(tmp_path, "w.wat", "s.bin"))
        long = tmp_path / "long.toml"
        long.write_text(f'name = "long"\ncomponent = "w.wat"\ndescription = "{"x" * 64}"\n')
        with pytest.raises(ManifestError, match=r"manifest file .*more than the maximum of 64"):
            theater.start(long)
        assert list(theater.store.blobs) == []


def test_a_component_is_stored_only_once_it_compiles(operator, tmp_path):
    (tmp_path / "junk.wasm").write_bytes(b"\0asm\x0d\x00\x01\x00garbage")
    with pytest.raises(ComponentError):
        operator.start(operator_manifest(tmp_path, "junk.wasm"))
    assert list(operator.store.blobs) == []
    (tmp_path / "w.wat").write_text(wat.echo_actor())
    actor = operator.start(operator_manifest(tmp_path, "w.wat"))
    assert operator.events(actor)[0].data["component"] == blob_digest(wat.echo_actor().encode())


def test_the_operator_may_still_name_any_regular_file(tmp_path):
    """The operator is trusted: absolute paths and '..' work for what the operator writes."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "w.wat").write_text(wat.echo_actor())
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "a.toml"
    path.write_text(inline(component="../lib/w.wat", state_file=str(tmp_path / "lib" / "w.wat")))
    manifest = load_manifest(path)
    assert manifest.init_state == wat.echo_actor().encode()
    assert manifest.files == FileAccess.trusted(tmp_path / "conf")


def test_parse_manifest_names_no_files_unless_given_access(tmp_path):
    (tmp_path / "s.bin").write_bytes(CANARY)
    with pytest.raises(ManifestError, match="may not name a file on the host"):
        parse_manifest(inline(state_file=str(tmp_path / "s.bin")))
    recorded = parse_manifest(inline(state_file=str(tmp_path / "s.bin")), files=FileAccess.recorded())
    assert recorded.init_state is None
