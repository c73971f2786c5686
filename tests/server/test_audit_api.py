"""The audit log over HTTP: key, checkpoints, proofs, each checked with nothing but the verifier key."""

from __future__ import annotations

from store.audit import check_proof
from store.checkpoint import VerifierKey
from tests.components import wat


def test_checkpoint_and_proofs_over_http_check_with_only_the_key(servers, start_actor):
    server = servers()
    http = server.http()
    key = VerifierKey.parse(http.ok("GET", "/v1/audit/key")["key"])
    actor = start_actor(http, "echo", wat.echo_actor())
    http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "one"}})
    first = http.ok("POST", "/v1/audit/checkpoints", status=201)
    first_head = http.ok("GET", f"/v1/actors/{actor}")["head"]["hash"]
    http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "two"}})
    second = http.ok("POST", "/v1/audit/checkpoints", status=201)
    assert second["number"] == first["number"] + 1 and second["size"] > first["size"]
    listed = http.ok("GET", "/v1/audit/checkpoints")["checkpoints"]
    assert [c["note"] for c in listed][-2:] == [first["note"], second["note"]]
    assert http.ok("GET", "/v1/audit/checkpoints/latest") == second

    proof = http.ok("GET", f"/v1/audit/proofs/inclusion?event={actor}")
    head = http.ok("GET", f"/v1/actors/{actor}")["head"]
    assert proof["event"] == head["hash"]
    assert check_proof(proof, key).event.hex() == head["hash"]
    older = http.ok("GET", f"/v1/audit/proofs/inclusion?event={first_head}&checkpoint={first['number']}")
    assert check_proof(older, key).checkpoints[0].size == first["size"]
    # The actor's head now is newer than checkpoint 1: no proof against it, and the answer says why.
    newer = http.get(f"/v1/audit/proofs/inclusion?event={actor}&checkpoint={first['number']}")
    assert newer.status == 409 and "make a newer checkpoint" in newer.json["message"]
    consistency = http.ok("GET", f"/v1/audit/proofs/consistency?old={first['number']}&new={second['number']}")
    assert check_proof(consistency, key).kind == "consistency"


def test_bad_audit_requests_get_clear_errors(servers):
    http = servers().http()
    missing = http.get("/v1/audit/proofs/inclusion?event=" + "ab" * 32)
    assert missing.status == 404
    assert http.get("/v1/audit/proofs/inclusion").status == 400
    assert http.get("/v1/audit/checkpoints/nope").status == 400
    assert http.get("/v1/audit/checkpoints/7").status == 404
    assert http.get("/v1/audit/proofs/consistency?old=1").status == 400


def _checkpoint_covering(http, size: int, timeout: float = 30.0) -> dict:
    """The first checkpoint of at least ``size`` events, polled until the deadline (the server signs on its own)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = http.ok("GET", "/v1/audit/checkpoints")["checkpoints"]
        covering = [c for c in listed if c["size"] >= size]
        if covering:
            return covering[0]
    raise AssertionError(f"no checkpoint of {size} events within {timeout} s")


def test_server_signs_checkpoints_at_its_interval_while_the_log_grows(servers, start_actor):
    server = servers(args=("--checkpoint-every", "0.05"))
    http = server.http()
    key = VerifierKey.parse(http.ok("GET", "/v1/audit/key")["key"])
    actor = start_actor(http, "echo", wat.echo_actor())
    http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "one"}})
    head = http.ok("GET", f"/v1/actors/{actor}")["head"]
    cp = _checkpoint_covering(http, head["seq"] + 1)
    proof = http.ok("GET", f"/v1/audit/proofs/inclusion?event={head['hash']}&checkpoint={cp['number']}")
    assert check_proof(proof, key).event.hex() == head["hash"]
    # While nothing is appended, no new checkpoint is made: sizes only grow, one checkpoint per size at most.
    sizes = [c["size"] for c in http.ok("GET", "/v1/audit/checkpoints")["checkpoints"]]
    assert sizes == sorted(set(sizes))
