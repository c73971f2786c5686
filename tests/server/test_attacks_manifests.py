"""Attacks on a real server through the manifests an API client sends: host files by name, nesting that overflowed
the TOML parser's stack (a 500), limits above the operator's maximums, and a spawned child naming host files."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from tests.components import supervisor_wat as sw
from tests.components import wat
from tests.components.wat import ERR_MARKER
from tests.server._harness import CLI, ROOT, cli_env, start_body

CANARY = b"theater-server-canary-0e61f2-do-not-leak\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "canary.txt"
    path.write_bytes(CANARY)
    return path


def no_canary_anywhere(server, http) -> None:
    """Not in the server's log, nor in any blob of its store."""
    assert CANARY.strip().decode() not in server.stderr()
    for row in http.ok("GET", "/v1/blobs")["blobs"]:
        assert CANARY.strip() not in http.get(f"/v1/blobs/{row['hash']}").body


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("opener, closer", [("[", "]"), ("{a = ", "}")], ids=["arrays", "tables"])
def test_deeply_nested_toml_is_422_not_500(http, depth, opener, closer):
    manifest = "x = " + opener * depth + "1" + closer * depth + "\n"
    reply = http.post("/v1/actors", {"manifest": manifest})
    assert reply.status == 422, reply.body
    assert reply.json["error"] == "ManifestError" and "nested too deeply" in reply.json["message"]
    assert http.get("/v1/server").status == 200


def test_an_api_manifest_naming_a_host_file_as_component_or_state_is_refused(server, http, canary):
    refused = http.post("/v1/actors", {"manifest": f'name = "a"\ncomponent = "{canary}"\n'})
    assert refused.status == 422 and refused.json["field"] == "component"
    body = start_body("a", wat.echo_actor(), extra=f'init_state = {{ file = "{canary}" }}')
    refused = http.post("/v1/actors", body)
    assert refused.status == 422 and refused.json["field"] == "init_state.file"
    assert CANARY.strip().decode() not in refused.body.decode()
    no_canary_anywhere(server, http)


def test_a_guest_started_through_the_api_cannot_spawn_from_host_files(server, http, canary):
    body = start_body("sup", sw.supervisor_actor(), handlers=("message-server", "supervisor"))
    sup = http.ok("POST", "/v1/actors", body, status=201)["id"]
    digest = http.ok("POST", "/v1/actors", start_body("worker", wat.echo_actor()), status=201)["component"]
    attempts = [
        str(canary),
        f'name = "c"\ncomponent = "{digest}"\ninit_state = {{ file = "{canary}" }}\n',
        f'name = "c"\ncomponent = "{canary}"\n',
        f'name = "c"\ncomponent = "{digest}"\ninit_state = {{ file = "/proc/self/environ" }}\n',
    ]
    for manifest in attempts:
        answer = http.ok("POST", f"/v1/actors/{sup}/request",
                         {"message": {"base64": b64(b"spawn\0" + manifest.encode())}})
        data = base64.b64decode(answer["response"]["base64"])
        assert data.startswith(ERR_MARKER) and b"may not name a file on the host" in data, data
        assert CANARY.strip() not in data
    ok = http.ok("POST", f"/v1/actors/{sup}/request",
                 {"message": {"base64": b64(f'spawn\0name = "c"\ncomponent = "{digest}"\n'.encode())}})
    assert not base64.b64decode(ok["response"]["base64"]).startswith(ERR_MARKER)
    no_canary_anywhere(server, http)


def test_the_operators_maximums_bound_api_manifests(servers):
    server = servers(args=("--max", "fuel_per_call=1000000", "--max", "memory_bytes=16777216"))
    http = server.http()
    body = start_body("greedy", wat.echo_actor(), extra="[limits]\nfuel_per_call = 1000001\nmemory_bytes = 1000")
    refused = http.post("/v1/actors", body)
    assert refused.status == 422 and refused.json["field"] == "limits.fuel_per_call"
    assert "1000001 is more than this runtime's maximum of 1000000" in refused.json["message"]
    body = start_body("fits", wat.echo_actor(), extra="[limits]\nfuel_per_call = 1000000\nmemory_bytes = 16777216")
    assert http.post("/v1/actors", body).status == 201


def test_a_bad_max_option_is_a_usage_error(tmp_path):
    done = subprocess.run([*CLI, "--home", str(tmp_path / "h"), "server", "--max", "fuel=1"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=cli_env())
    assert done.returncode == 2 and "expected NAME=VALUE with NAME one of fuel_per_call" in done.stderr
