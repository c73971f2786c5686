"""Secrets of the ``http-client`` handler: a credential the host adds to the requests of the URLs its rule names, read
from the runtime's environment, never handed to the guest and never recorded. Against real servers on 127.0.0.1;
tests/handlers/test_http_examples.py shows with the agent example that the key is in no event of the chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from yarl import URL

from theater import netloop
from theater.errors import ManifestError
from theater.files import FileAccess
from theater.handlers.http_client import HttpClientHandler, Secret
from tests.handlers._servers import TestServer, echoed
from tests.handlers.test_http_client import FakeActor

KEY = "sk-test-0123456789"


class OperatorActor(FakeActor):
    """A fake actor whose manifest is the operator's own (read from disk)."""

    def __init__(self, files: FileAccess | None = None) -> None:
        super().__init__()
        self.manifest = SimpleNamespace(files=files or FileAccess.trusted())


@pytest.fixture
def actor(monkeypatch: pytest.MonkeyPatch) -> Iterator[OperatorActor]:
    monkeypatch.setenv("THEATER_TEST_MODEL_KEY", KEY)
    fake = OperatorActor()
    yield fake
    netloop.close(fake.store)


@pytest.fixture
def model() -> Iterator[TestServer]:
    served = TestServer()
    yield served
    served.close()


@pytest.fixture
def other() -> Iterator[TestServer]:
    served = TestServer()
    yield served
    served.close()


def config(model: TestServer, **secret: Any) -> dict[str, Any]:
    rule = {"env": "THEATER_TEST_MODEL_KEY", "header": "Authorization", "prefix": "Bearer ",
            "urls": [model.url("/")], **secret}
    return {"allow_loopback": ["127.0.0.1"], "secrets": [rule]}


def send(actor: OperatorActor, config: dict[str, Any], uri: str,
         headers: list[list[str]] | None = None) -> dict[str, Any]:
    handler = HttpClientHandler(actor, config)  # type: ignore[arg-type]
    request = {"method": "GET", "uri": uri, "headers": headers or [], "body": None}
    return handler.functions()["send-http"](request)


def test_a_secret_is_added_to_requests_to_its_urls(actor, model):
    seen = echoed(send(actor, config(model), model.url("/echo")))
    assert seen["headers"]["Authorization"] == f"Bearer {KEY}"


def test_a_guest_cannot_replace_the_secret_with_its_own_header(actor, model):
    seen = echoed(send(actor, config(model), model.url("/echo"), headers=[["authorization", "Bearer mine"]]))
    assert seen["headers"]["Authorization"] == f"Bearer {KEY}"
    assert "Bearer mine" not in str(seen)


def test_a_secret_is_not_sent_to_urls_outside_its_rule(actor, model, other):
    seen = echoed(send(actor, config(model), other.url("/echo")))
    assert "Authorization" not in seen["headers"]


def test_a_redirect_away_from_the_secrets_urls_does_not_carry_it(actor, model, other):
    away = model.url("/redirect?to=" + other.url("/echo"))
    seen = echoed(send(actor, config(model), away))
    assert other.requests == ["GET /echo"]
    assert "Authorization" not in seen["headers"]


def test_a_secret_is_never_sent_over_plain_http_to_a_host_that_is_not_loopback():
    secret = Secret.parse({"env": "K", "urls": ["api.example.com"]}, "secrets[0]")
    assert secret.applies(URL("https://api.example.com/v1/chat"))
    assert not secret.applies(URL("http://api.example.com/v1/chat"))
    assert Secret.parse({"env": "K", "urls": ["127.0.0.1"]}, "s").applies(URL("http://127.0.0.1:8090/v1/"))


def test_the_secrets_value_is_not_in_the_handlers_grant_or_its_text(actor, model):
    handler = HttpClientHandler(actor, config(model))  # type: ignore[arg-type]
    assert KEY not in repr(handler.grant) and KEY not in repr(handler.__dict__)


@pytest.mark.parametrize(
    "files",
    [FileAccess.confined(Path("/tmp"), origin="actor 1234"), FileAccess.none("an API client")],
    ids=["a guest's spawn", "an API client"],
)
def test_secrets_named_by_a_manifest_not_from_the_operator_are_refused(monkeypatch, model, files):
    # Else a hostile manifest would send any variable of the host to an address of its choosing.
    monkeypatch.setenv("THEATER_TEST_MODEL_KEY", KEY)
    with pytest.raises(ManifestError) as caught:
        HttpClientHandler(OperatorActor(files), config(model))  # type: ignore[arg-type]
    assert "only the operator's own manifests may name them" in str(caught.value)
    assert files.origin in str(caught.value)


def test_an_unset_variable_is_refused_at_start_unless_the_secret_is_optional(monkeypatch, model):
    monkeypatch.delenv("THEATER_TEST_MODEL_KEY", raising=False)
    actor = OperatorActor()
    try:
        with pytest.raises(ManifestError, match="the environment variable THEATER_TEST_MODEL_KEY is not set"):
            HttpClientHandler(actor, config(model))  # type: ignore[arg-type]
        seen = echoed(send(actor, config(model, optional=True), model.url("/echo")))
        assert "Authorization" not in seen["headers"]
    finally:
        netloop.close(actor.store)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ({"env": "A B", "urls": ["x.example"]}, "secrets[0].env: expected an environment variable name"),
        ({"env": "K"}, "secrets[0].urls: expected a non-empty list"),
        ({"env": "K", "urls": ["x.example"], "header": "X: y"}, "secrets[0].header: expected a header name"),
        ({"env": "K", "urls": ["x.example"], "prefix": "a\r\nX-Evil: 1"}, "secrets[0].prefix"),
        ({"env": "K", "urls": ["x.example"], "value": "inline"}, "unknown key 'value'"),
        ("K", "expected a table"),
    ],
)
def test_a_bad_secret_is_refused_naming_it(secret, problem):
    actor = OperatorActor()
    with pytest.raises(ManifestError) as caught:
        HttpClientHandler(actor, {"secrets": [secret]})  # type: ignore[arg-type]
    assert caught.value.field == "handlers.http-client.config.secrets"
    assert problem in caught.value.problem


PARENT = {"env": "K", "header": "Authorization", "urls": ["https://api.example.com/v1/"]}


@pytest.mark.parametrize(
    ("child", "more"),
    [
        ([], None),
        ([PARENT], None),
        ([{**PARENT, "urls": ["https://api.example.com/v1/chat"]}], None),
        ([{**PARENT, "urls": ["api.example.com"]}], "secret K (Authorization) is not among the parent's"),
        ([{**PARENT, "env": "HOME"}], "secret HOME (Authorization) is not among the parent's"),
        ([{**PARENT, "header": "X-Key"}], "secret K (X-Key)"),
    ],
)
def test_a_childs_secrets_must_be_its_parents_within_their_urls(child, more):
    found = HttpClientHandler.config_within({"secrets": [PARENT]}, {"secrets": child})
    if more is None:
        assert found is None
    else:
        assert found is not None and more in found, found
