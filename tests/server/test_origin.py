"""Attacks on the API from web pages and API clients: cross-origin posts, DNS rebinding, the runtime's labels.

A browser lets any page POST a form or ``text/plain`` body to ``http://127.0.0.1:PORT`` without asking the server
first, and a page can rebind its own name to 127.0.0.1. These tests send what such a browser sends.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse

import aiohttp
import pytest

from replay.engine import WASMTIME_VERSION
from store import blob_digest
from tests.components import wat
from tests.server._harness import WAIT, start_body

EVIL = "http://evil.example"


def own_origin(server) -> str:
    return f"http://{server.address}"


def test_api_client_cannot_plant_compiled_artifact_label(server, http):
    honest = http.request("POST", "/v1/blobs", data=wat.echo_actor().encode()).json["hash"]
    label = f"compiled/{honest}/wasmtime-{WASMTIME_VERSION}/0123456789abcdef"
    quoted = urllib.parse.quote(label, safe="")
    planted = http.request("POST", f"/v1/blobs?label={quoted}", data=b"native code of the attacker")

    assert planted.status == 400 and planted.json["error"] == "ReservedLabelError"
    assert "reserved" in planted.json["message"]
    assert http.get(f"/v1/blobs/{blob_digest(b'native code of the attacker').hex()}").status == 404  # not stored
    for reply in (http.request("PUT", f"/v1/labels/{quoted}", {"hash": honest}),
                  http.request("PUT", f"/v1/labels/{urllib.parse.quote('build/' + honest, safe='')}",
                               {"hash": honest}),
                  http.request("DELETE", f"/v1/labels/{urllib.parse.quote('theater/x', safe='')}")):
        assert reply.status == 400 and reply.json["error"] == "ReservedLabelError", reply.body
    assert not [row for row in http.ok("GET", "/v1/labels")["labels"] if row["label"].startswith(("compiled/",
                                                                                                     "build/"))]


def test_cross_origin_text_plain_post_is_refused(server, http):
    # What <form enctype="text/plain" action="http://127.0.0.1:PORT/v1/blobs?label=x"> sends.
    form = {"Content-Type": "text/plain", "Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    refused = http.request("POST", "/v1/blobs?label=from-a-page", data=b"x=y", headers=form)
    assert refused.status == 403 and refused.json["error"] == "CrossOrigin"
    # Older browsers send no fetch metadata; the Origin alone is enough.
    started = json.dumps(start_body("from-a-page", wat.echo_actor())).encode()
    refused = http.request("POST", "/v1/actors", data=started, headers={"Content-Type": "text/plain", "Origin": EVIL})
    assert refused.status == 403 and refused.json["error"] == "CrossOrigin"
    # And with neither, a text/plain body is still not JSON and not a blob upload.
    for path, data in (("/v1/blobs?label=from-a-page", b"x=y"), ("/v1/actors", started)):
        refused = http.request("POST", path, data=data, headers={"Content-Type": "text/plain"})
        assert refused.status == 415 and refused.json["error"] == "UnsupportedMediaType", refused.body
    assert "from-a-page" not in {row["label"] for row in http.ok("GET", "/v1/labels")["labels"]}
    assert "from-a-page" not in {a["name"] for a in http.ok("GET", "/v1/actors")["actors"]}


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_a_form_post_is_refused_even_with_an_empty_body(http, start_actor, content_type):
    actor = start_actor(http, "victim", wat.echo_actor())

    refused = http.request("POST", f"/v1/actors/{actor}/stop", data=b"", headers={"Content-Type": content_type})

    assert refused.status == 415 and refused.json["error"] == "UnsupportedMediaType"
    assert http.ok("GET", f"/v1/actors/{actor}")["status"] == "running"


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_cross_site_fetch_metadata_is_refused(http, site):
    for reply in (http.get("/v1/actors", headers={"Sec-Fetch-Site": site}),
                  http.request("POST", "/v1/actors", {}, headers={"Sec-Fetch-Site": site})):
        assert reply.status == 403 and reply.json["error"] == "CrossOrigin"
        assert f"Sec-Fetch-Site: {site}" in reply.json["message"]


def test_another_local_origin_is_refused(server, http):
    # A page on another port of the same machine is same-site for the browser, but another origin.
    port = int(server.address.rsplit(":", 1)[1])
    other = f"http://127.0.0.1:{port + 1}"
    reply = http.get("/v1/actors", headers={"Origin": other})
    assert reply.status == 403 and reply.json["error"] == "CrossOrigin"
    assert http.get("/v1/actors", headers={"Origin": "null"}).status == 403


def test_same_origin_and_typed_urls_are_served(server, http):
    assert http.get("/v1/actors", headers={"Origin": own_origin(server), "Sec-Fetch-Site": "same-origin"}).status == 200
    assert http.get("/v1/server", headers={"Sec-Fetch-Site": "none"}).status == 200
    port = server.address.rsplit(":", 1)[1]
    by_name = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
    assert http.get("/v1/server", headers=by_name).status == 200


def test_dns_rebinding_host_is_refused_without_a_token(server, http):
    port = server.address.rsplit(":", 1)[1]
    # evil.example now resolves to 127.0.0.1: to the browser this is a same-origin request of the page.
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}",
               "Sec-Fetch-Site": "same-origin"}
    for reply in (http.get("/v1/actors", headers=rebound),
                  http.request("POST", "/v1/actors", start_body("rebound", wat.echo_actor()), headers=rebound)):
        assert reply.status == 403 and reply.json["error"] == "HostNotAllowed"
    assert "rebound" not in {a["name"] for a in http.ok("GET", "/v1/actors")["actors"]}


def test_a_websocket_from_another_origin_is_refused(server, http, start_actor):
    actor = start_actor(http, "watched", wat.echo_actor())

    async def handshake(origin: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"{server.url}/v1/actors/{actor}/subscribe", origin=origin,
                                              timeout=aiohttp.ClientWSTimeout(ws_receive=WAIT)):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(handshake(EVIL)) == 403
    assert asyncio.run(handshake(own_origin(server))) == 101


def test_json_writes_need_a_json_content_type(http, start_actor):
    actor = start_actor(http, "echo", wat.echo_actor())
    body = b'{"message": {"text": "hi"}}'

    untyped = http.request("POST", f"/v1/actors/{actor}/send", data=body, headers={"Content-Type": ""})
    typed = http.request("POST", f"/v1/actors/{actor}/send", data=body,
                         headers={"Content-Type": "application/json; charset=utf-8"})

    assert untyped.status == 415 and "application/json" in untyped.json["message"]
    assert typed.status == 200
    # A write without a body needs no content type (curl -X POST .../stop).
    assert http.request("POST", f"/v1/actors/{actor}/stop").status == 200


def test_blob_uploads_need_a_binary_content_type(http):
    refused = http.request("POST", "/v1/blobs", data=b"bytes", headers={"Content-Type": "application/json"})
    assert refused.status == 415 and "application/octet-stream" in refused.json["message"]
    assert http.request("POST", "/v1/blobs", data=b"bytes").status == 201  # octet-stream


def test_startup_line_says_how_the_server_is_protected(servers):
    tokenless = servers("open")
    assert "no token: only same-origin, non-browser clients; listening on loopback only" in tokenless.banner
    guarded = servers("guarded", env={"THEATER_TOKEN": "s3cret"})
    assert "token required; cross-origin browser requests refused" in guarded.banner


def test_a_token_server_refuses_cross_origin_requests_too(servers):
    server = servers(env={"THEATER_TOKEN": "s3cret"})
    http = server.http(token="s3cret")

    reply = http.get("/v1/actors", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})

    assert reply.status == 403 and reply.json["error"] == "CrossOrigin"
    port = server.address.rsplit(":", 1)[1]
    assert http.get("/v1/actors", headers={"Host": f"some-name:{port}"}).status == 200  # the token protects it
