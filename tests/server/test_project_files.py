"""A project runs on a server as it runs embedded: ``theater start`` uploads the manifest's directory (its manifests
and the files they name) as blobs, and a guest's supervisor spawns by those names, read from the blob store only.

The project sits beside a canary file; the server's working directory holds files of its own (``pyproject.toml``).
No guest name reaches either: a name not uploaded, ``..`` or an absolute path is refused with ``err``.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.components.wat import ERR_MARKER
from tests.server._harness import ROOT, Http, ServerProcess

CANARY = b"theater-project-canary-7c41d9-do-not-leak\n"
INSIDE = b"notes-not-named-by-any-manifest-2f6e\n"
STATE = b"\x00worker state from state.bin"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``proj/sup.toml`` (a supervisor), ``proj/worker.toml`` (its component in ``build/``, its state in a file),
    files that must not travel (notes, a symlink to the canary, a manifest naming ``..``), a canary outside."""
    canary = tmp_path / "canary.txt"
    canary.write_bytes(CANARY)
    proj = tmp_path / "proj"
    (proj / "build").mkdir(parents=True)
    (proj / "sup.wat").write_text(sw.supervisor_actor())
    handlers = '[[handlers]]\ntype = "message-server"\n'
    (proj / "sup.toml").write_text(
        f'name = "sup"\ncomponent = "sup.wat"\n{handlers}[[handlers]]\ntype = "supervisor"\n')
    (proj / "build" / "worker.wat").write_text(wat.echo_actor())
    (proj / "state.bin").write_bytes(STATE)
    (proj / "worker.toml").write_text(
        f'name = "worker"\ncomponent = "build/worker.wat"\ninit_state = {{ file = "state.bin" }}\n{handlers}')
    (proj / "notes.txt").write_bytes(INSIDE)
    (proj / "to-canary.txt").symlink_to(canary)
    (proj / "leak.toml").write_text(f'name = "leak"\ncomponent = "../canary.txt"\n{handlers}')
    (proj / "linked.toml").write_text(
        f'name = "linked"\ncomponent = "build/worker.wat"\ninit_state = {{ file = "to-canary.txt" }}\n{handlers}')
    return proj


def request(http: Http, actor: str, message: bytes) -> bytes:
    answer = http.ok("POST", f"/v1/actors/{actor}/request", {"message": {"base64": base64.b64encode(message).decode()}})
    return base64.b64decode(answer["response"]["base64"])


def payload(value: dict[str, str]) -> bytes:
    return value["text"].encode() if "text" in value else base64.b64decode(value["base64"])


def spawn(http: Http, sup: str, manifest: str) -> bytes:
    return request(http, sup, b"spawn\0" + manifest.encode())


def refused(http: Http, sup: str, manifest: str) -> str:
    answer = spawn(http, sup, manifest)
    assert answer.startswith(ERR_MARKER), answer
    assert CANARY.strip() not in answer and INSIDE.strip() not in answer
    return answer.removeprefix(ERR_MARKER).decode()


def started(server: ServerProcess, manifest: Path) -> str:
    return server.cli("start", str(manifest), "--id-only").stdout.strip()


def no_secret_anywhere(server: ServerProcess, http: Http) -> None:
    """Neither the canary nor the unnamed notes in the server's log or in any blob of its store."""
    for secret in (CANARY, INSIDE):
        assert secret.strip().decode() not in server.stderr()
        for row in http.ok("GET", "/v1/blobs")["blobs"]:
            assert secret.strip() not in http.get(f"/v1/blobs/{row['hash']}").body


def test_a_supervisor_started_by_the_cli_spawns_its_projects_manifest_by_name(servers, project):
    server = servers()
    http = server.http()
    sup = started(server, project / "sup.toml")
    child = spawn(http, sup, "worker.toml").decode()
    worker = http.ok("GET", f"/v1/actors/{child}")
    assert (worker["name"], worker["status"], worker["parent"]) == ("worker", "running", sup)
    assert request(http, child, b"hello") == b"hello"
    assert payload(http.ok("GET", f"/v1/actors/{child}/state")["state"]) == STATE
    inline = 'name = "inline"\ncomponent = "build/worker.wat"\ninit_state = { file = "state.bin" }\n'
    assert not spawn(http, sup, inline).startswith(ERR_MARKER)
    no_secret_anywhere(server, http)


def test_a_guest_on_a_server_cannot_spawn_what_the_cli_did_not_upload(servers, project, tmp_path):
    server = servers()
    http = server.http()
    sup = started(server, project / "sup.toml")
    assert (ROOT / "pyproject.toml").is_file()  # on the server's disk, in its working directory
    for name in ("pyproject.toml", "notes.txt", "to-canary.txt", "missing.toml"):
        assert "may name only the files uploaded with its tree" in refused(http, sup, name)
        assert f"{name!r} is not one of them" in refused(http, sup, name)
    assert "has a '..' component" in refused(http, sup, "../canary.txt")
    assert "is an absolute path" in refused(http, sup, str(tmp_path / "canary.txt"))
    assert "is an absolute path" in refused(http, sup, str(ROOT / "pyproject.toml"))
    assert "has a '..' component" in refused(http, sup, "leak.toml")  # uploaded, but names a file out of the tree
    assert "'to-canary.txt' is not one of them" in refused(http, sup, "linked.toml")
    state_file = f'name = "c"\ncomponent = "build/worker.wat"\ninit_state = {{ file = "{tmp_path}/canary.txt" }}\n'
    assert "is an absolute path" in refused(http, sup, state_file)
    assert [a["name"] for a in http.ok("GET", "/v1/actors")["actors"]] == ["sup"]
    no_secret_anywhere(server, http)


def test_a_reopened_supervisor_on_a_restarted_server_still_spawns_by_name(servers, project):
    first = servers()
    sup = started(first, project / "sup.toml")
    child = spawn(first.http(), sup, "worker.toml").decode()
    assert first.stop() == 0
    second = servers()
    http = second.http()
    assert "2 resumed" in second.banner
    again = spawn(http, sup, "worker.toml").decode()
    assert http.ok("GET", f"/v1/actors/{again}")["status"] == "running" and again != child
    assert "'notes.txt' is not one of them" in refused(http, sup, "notes.txt")
    assert http.ok("POST", f"/v1/actors/{sup}/verify")["ok"] is True


def test_a_start_request_with_a_bad_files_map_is_refused(servers):
    server = servers()
    http = server.http()
    blob = http.post("/v1/blobs", data=wat.echo_actor().encode())
    digest = blob.json["hash"]
    manifest = 'name = "w"\ncomponent = "w.wat"\n'
    for files, status, words in (
        ({"../w.wat": digest}, 400, "has a '..' component"),
        ({"/etc/w.wat": digest}, 400, "is an absolute path"),
        ({"./w.wat": digest}, 400, "is not in plain form"),
        ({"w.wat": "abc"}, 400, "64 hexadecimal digits"),
        ({"w.wat": "0" * 64}, 422, "no blob 0000"),
        ({"other.wat": digest}, 422, "'w.wat' is not one of them"),
    ):
        reply = http.post("/v1/actors", {"manifest": manifest, "files": files})
        assert reply.status == status and words in reply.json["message"], (files, reply.body)
    ok = http.post("/v1/actors", {"manifest": manifest, "files": {"w.wat": digest}})
    assert ok.status == 201, ok.body
