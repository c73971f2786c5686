"""TLS serving of the ``http-framework`` handler: a real Python actor serves HTTPS and wss with a self-signed
certificate made by ``openssl``, to a real client trusting it, on 127.0.0.1. The certificate and key are files only
the operator's manifest may name: a guest naming others, and a manifest from a guest or an API client naming any,
are refused."""

from __future__ import annotations

import asyncio
import gc
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from replay import Replayer
from tests.handlers import test_http_websocket as _ws
from tests.handlers.test_http_websocket import WAIT, Served
from tests.sdk._support import chain_problems
from theater.errors import ManifestError
from theater.files import FileAccess
from theater.handlers.http_framework import FrameworkGrant, HttpFrameworkHandler
from theater.runtime import Theater

pytestmark = [pytest.mark.integration]

chat, serve = _ws.chat, _ws.serve  # the chat actor and its runtimes (fixtures), which serve TLS too


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=WAIT,
    )
    return cert, key


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _serve_tls(served: Served, cert: str, key: str) -> tuple[int, bytes]:
    query = urllib.parse.urlencode({"cert": cert, "key": key})
    return _get(f"http://127.0.0.1:{served.port}/serve?{query}")


# aiohttp's client may leave its TLS socket to the garbage collector when ``asyncio.run`` ends during the TLS
# shutdown (the client's socket, not the server's): collected in this test, its ResourceWarning is not a failure.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_tls_server_serves_https_and_wss_to_a_client_trusting_its_certificate(serve, certificate):
    cert, key = certificate
    served = serve(f'tls_cert = "{cert}", tls_key = "{key}"')
    status, body = _serve_tls(served, str(cert), str(key))
    assert status == 200
    port = int(body)
    trusting = ssl.create_default_context(cafile=str(cert))

    assert _get(f"https://127.0.0.1:{port}/nowhere", trusting)[0] == 404  # answered over TLS
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:  # a client trusting only the system's
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")

    async def talk() -> str:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"wss://127.0.0.1:{port}/ws", ssl=trusting) as ws:
                await ws.send_str("secret")
                return await ws.receive_str()

    assert asyncio.run(asyncio.wait_for(talk(), WAIT)) == "echo 1: secret"
    gc.collect()
    served.disconnected(1)
    served.theater.stop(served.actor)
    assert chain_problems(served.theater) == []
    report = Replayer(served.theater.store).replay(uuid.UUID(served.actor))
    assert report.ok, report.divergence


def test_a_guest_naming_other_files_for_tls_is_refused(serve, certificate):
    cert, key = certificate
    served = serve(f'tls_cert = "{cert}", tls_key = "{key}"')
    assert _serve_tls(served, "/etc/ssl/private/other.pem", "/etc/shadow") == (
        403, b"refused: tls-config must name the tls_cert and tls_key of the actor's manifest")


def test_tls_is_refused_when_the_manifest_names_no_certificate(serve, certificate):
    cert, key = certificate
    served = serve()
    assert _serve_tls(served, str(cert), str(key)) == (
        403, b"refused: this actor may not serve TLS (its manifest's config names no tls_cert and tls_key)")


@pytest.mark.parametrize(
    "files",
    [FileAccess.confined(Path("/tmp"), origin="actor 1234"), FileAccess.none("an API client")],
    ids=["a guest's spawn", "an API client"],
)
def test_tls_files_named_by_a_manifest_not_from_the_operator_are_refused(files, certificate):
    cert, key = certificate
    actor = SimpleNamespace(source="child.toml", manifest=SimpleNamespace(files=files))
    with pytest.raises(ManifestError) as caught:
        HttpFrameworkHandler(actor, {"tls_cert": str(cert), "tls_key": str(key)})  # type: ignore[arg-type]
    assert "only the operator's own manifests may name them" in str(caught.value)
    assert files.origin in str(caught.value)


@pytest.mark.parametrize(
    "config",
    [{"tls_cert": "cert.pem", "tls_key": "/k.pem"}, {"tls_cert": "/c.pem"}, {"tls_key": 1}],
)
def test_a_relative_or_lone_tls_path_is_refused(config):
    with pytest.raises(ManifestError) as caught:
        FrameworkGrant.parse(config, "m.toml")
    assert "expected an absolute path" in str(caught.value)


def test_a_child_may_not_name_tls_files_its_parent_does_not():
    parent = FrameworkGrant.parse({}, "p")
    child = FrameworkGrant.parse({"tls_cert": "/c.pem", "tls_key": "/k.pem"}, "c")
    assert child.within(parent) == "tls_cert and tls_key name files the parent's config does not"
    assert child.within(child) is None


def test_a_reopened_actor_serves_tls_again_never_plain_http(chat, certificate, tmp_path):
    cert, key = certificate
    home = tmp_path / "home"
    first = Served(home, chat, f'tls_cert = "{cert}", tls_key = "{key}"', None)
    status, body = _serve_tls(first, str(cert), str(key))
    assert status == 200
    actor, port = first.actor, int(body)
    first.theater.close()  # as after a crash
    trusting = ssl.create_default_context(cafile=str(cert))
    with Theater(home) as second:
        second.reopen(actor)
        assert _get(f"https://127.0.0.1:{port}/nowhere", trusting)[0] == 404  # the certificate was loaded again
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            _get(f"http://127.0.0.1:{port}/nowhere")  # the TLS port never answers plain HTTP
        second.stop(actor)
        assert chain_problems(second) == []
