"""The bearer token: from $THEATER_TOKEN or <home>/token, required on every request, used by the CLI."""

from __future__ import annotations

from tests.components import wat
from tests.server._harness import start_body


def test_a_token_from_the_environment_is_required_on_every_request(servers):
    server = servers(env={"THEATER_TOKEN": "s3cret"})
    assert "token required" in server.banner
    anonymous = server.http()
    for reply in (anonymous.get("/v1/server"), anonymous.get("/v1/actors/x"), anonymous.post("/v1/actors", {})):
        assert reply.status == 401 and reply.json["error"] == "Unauthorized"
    assert server.http(token="wrong").get("/v1/actors").status == 401
    authorised = server.http(token="s3cret")
    actor = authorised.ok("POST", "/v1/actors", start_body("echo", wat.echo_actor()), status=201)["id"]
    assert authorised.ok("GET", "/v1/actors")["actors"][0]["id"] == actor


def test_the_cli_sends_the_token(servers, actor_files):
    server = servers(env={"THEATER_TOKEN": "s3cret"})
    refused = server.cli("list", check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("Unauthorized: ")
    manifest = actor_files("echo", wat.echo_actor())
    actor = server.cli("start", str(manifest), "--id-only", env={"THEATER_TOKEN": "s3cret"}).stdout.strip()
    assert actor in server.cli("list", env={"THEATER_TOKEN": "s3cret"}).stdout


def test_a_token_file_in_the_home(servers, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text("from-a-file\n")
    server = servers()
    assert server.http().get("/v1/server").status == 401
    assert server.http(token="from-a-file").get("/v1/server").status == 200
    assert server.cli("list").returncode == 0  # the CLI reads the same file through --home
