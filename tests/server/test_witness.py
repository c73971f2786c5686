"""Witnesses against real servers: they follow, re-execute and co-sign, resume after SIGKILL, and catch rewrites.

Every server and witness here is a real process on 127.0.0.1 with a real home; attacks rewrite a stopped
server's home behind its back (the attacker holds the home and its signing key).
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import uuid

from store import Store
from store.checkpoint import CosignerKey, load_or_create_seed, open_cosignature
from store.recorder import event_key
from tests.components import wat
from tests.server._harness import ROOT, WAIT, cli_env
from tests.server._witness import WitnessProcess, replaced, rewrite_home


def _witnessed_server(servers, tmp_path, home: str = "home", *extra: str):
    witness = WitnessProcess(tmp_path, f"witness-of-{home}")
    server = servers(home, args=("--witness-key", witness.key(), *extra))
    return server, witness


def _send(http, actor: str, n: int, text: str = "m") -> None:
    for i in range(n):
        http.ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": f"{text}{i}"}})


def _checkpoint(http) -> dict:
    return http.ok("POST", "/v1/audit/checkpoints", status=201)


def _round(done) -> dict[str, int]:
    """The figures of a witness's "checkpoint N: S events, E new verified, C calls re-executed" line."""
    words = done.stdout.split()
    return {"number": int(words[1].rstrip(":")), "size": int(words[2]), "events": int(words[4]),
            "calls": int(words[7])}


def test_witness_reexecutes_and_cosigns_a_checkpoint(servers, tmp_path, start_actor):
    server, witness = _witnessed_server(servers, tmp_path)
    http = server.http()
    actor = start_actor(http, "echo", wat.echo_actor())
    _send(http, actor, 3)
    cp = _checkpoint(http)
    done = witness.once(server.url)
    assert done.returncode == 0, done.stderr
    assert _round(done) == {"number": cp["number"], "size": cp["size"], "events": cp["size"], "calls": 4}
    served = http.ok("GET", f"/v1/audit/checkpoints/{cp['number']}")
    [cosig] = served["cosignatures"]
    key = CosignerKey.parse(witness.key())
    assert cosig["name"] == key.name
    # The note carries the cosignature as one more signature line, and it verifies as C2SP cosignature/v1.
    assert served["note"] == cp["note"] + cosig["line"] + "\n"
    assert open_cosignature(cp["note"], cosig["line"], [key]).timestamp == cosig["timestamp"]
    listed = server.cli("audit", "checkpoints").stdout
    assert f"co-signed by {key.name}" in listed
    as_json = json.loads(server.cli("audit", "checkpoints", "--json").stdout)
    assert as_json[-1]["cosignatures"][0]["name"] == key.name


def test_witness_following_a_server_under_load_keeps_up_and_cosigns(servers, tmp_path, start_actor):
    server, witness = _witnessed_server(servers, tmp_path, "home", "--checkpoint-every", "0.2")
    http = server.http()
    actors = [start_actor(http, f"echo{i}", wat.echo_actor()) for i in range(4)]
    witness.start(server.url, "--interval", "0.05")
    try:
        load = [threading.Thread(target=_send, args=(server.http(), a, 60)) for a in actors]
        for thread in load:
            thread.start()
        first = witness.wait_cosigned(1)  # it co-signs while the load runs
        for thread in load:
            thread.join(120)
        final = _checkpoint(http)  # the server's timer may sign one more of the same size: either will do
        last = witness.wait_cosigned(final["number"])
    finally:
        witness.stop()
    assert first < final["number"] <= last
    state = witness.state()
    assert state.number >= last and (state.size, state.verified) == (final["size"], final["size"])
    for actor in actors:
        progress = state.chains[uuid.UUID(actor).bytes]
        assert progress.calls == 61  # init and every message, each re-executed once
    cosigned = [c for c in http.ok("GET", "/v1/audit/checkpoints")["checkpoints"] if c["cosignatures"]]
    assert len(cosigned) >= 2 and cosigned[-1]["number"] == state.number


def test_witness_killed_and_restarted_resumes_from_where_it_verified(servers, tmp_path, start_actor):
    server, witness = _witnessed_server(servers, tmp_path)
    http = server.http()
    actor = start_actor(http, "echo", wat.echo_actor())
    _send(http, actor, 5)
    first = _checkpoint(http)
    witness.start(server.url, "--interval", "0.05")
    witness.wait_cosigned(first["number"])
    witness.kill()
    before = witness.state()
    chain = before.chains[uuid.UUID(actor).bytes]
    assert (before.number, before.verified, chain.calls) == (first["number"], first["size"], 6)
    assert chain.resume == chain.seq + 1  # every event of the chain consumed by re-execution
    _send(http, actor, 4)
    second = _checkpoint(http)
    done = witness.once(server.url)
    assert done.returncode == 0, done.stderr
    # Only what checkpoint 2 added is copied and re-executed: the 4 new calls, not the 6 verified before.
    assert _round(done) == {"number": second["number"], "size": second["size"],
                            "events": second["size"] - first["size"], "calls": 4}
    after = witness.state()
    assert after.verified == second["size"] and after.chains[uuid.UUID(actor).bytes].calls == 10


def _stop(server) -> None:
    assert server.stop() == 0, server.stderr()


def test_history_truncated_and_reappended_between_polls_is_caught(servers, tmp_path, start_actor):
    server, witness = _witnessed_server(servers, tmp_path)
    http = server.http()
    actor = start_actor(http, "echo", wat.echo_actor())
    _send(http, actor, 4)
    first = _checkpoint(http)
    assert witness.once(server.url).returncode == 0
    _stop(server)
    # The attacker cuts the chain back to its second message's result and lets the actor go on from there.
    who = uuid.UUID(actor)
    with Store(server.home / "store") as home:
        events = list(home.log.events(who))
        cut = [e for e in events if e.type == "wasm/result"][1].seq
        with home.env.env.begin(write=True) as txn:
            for event in events[cut + 1:]:
                txn.delete(event_key(who, event.seq), db=home.env.dbs["events"])
            txn.put(who.bytes, cut.to_bytes(8, "big") + events[cut].hash, db=home.env.dbs["heads"])
    server.start()
    http = server.http()
    _send(http, actor, 2, "rewritten")
    second = _checkpoint(http)
    done = witness.once(server.url)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "WITNESS ALERT: witness found a changed event" in done.stderr and "not co-signed" in done.stderr
    [path] = witness.evidence()
    evidence = json.loads(path.read_text())
    assert evidence["accepted"]["note"] == first["note"]
    assert evidence["checkpoint"]["note"].startswith(second["note"].split("\n\n")[0])
    assert not http.ok("GET", f"/v1/audit/checkpoints/{second['number']}")["cosignatures"]


def test_history_changed_and_rehashed_is_caught_as_inconsistent_checkpoints(servers, tmp_path, start_actor):
    server, witness = _witnessed_server(servers, tmp_path)
    http = server.http()
    actor = start_actor(http, "echo", wat.echo_actor())
    _send(http, actor, 4)
    first = _checkpoint(http)
    assert witness.once(server.url).returncode == 0
    _stop(server)
    # The attacker re-writes the whole log, one message changed and every hash after it recomputed, signed
    # with the home's own key, and serves it from the same place.
    rewrite_home(server.home / "store", tmp_path / "forged" / "store", extra=3,
                 change=lambda e: replaced(e.data, b"m2", b"XX") if e.type == "wasm/call" else None)
    forged = servers("forged", args=("--no-resume", "--witness-key", witness.key()))
    second = _checkpoint(forged.http())
    assert second["size"] == first["size"] + 3
    done = witness.once(forged.url)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "witness found a rewrite (inconsistent checkpoints)" in done.stderr
    evidence = json.loads(witness.evidence()[0].read_text())
    assert evidence["accepted"]["note"] == first["note"] and evidence["consistency_proof"] is not None
    assert evidence["checkpoint"]["note"].split("\n\n")[0] == second["note"].split("\n\n")[0]


def test_checkpoint_signed_by_another_key_is_caught(servers, tmp_path, start_actor):
    server, witness = _witnessed_server(servers, tmp_path)
    http = server.http()
    start_actor(http, "echo", wat.echo_actor())
    _checkpoint(http)
    assert witness.once(server.url).returncode == 0
    other = servers("other", args=("--witness-key", witness.key()))  # another home: another signing key
    start_actor(other.http(), "echo", wat.echo_actor())
    _checkpoint(other.http())
    done = witness.once(other.url)
    assert done.returncode == 2
    assert "witness found a checkpoint signed by another key" in done.stderr
    assert not other.http().ok("GET", "/v1/audit/checkpoints/latest")["cosignatures"]


def test_witness_restarted_after_a_rewrite_refuses_to_go_on_until_the_halt_is_cleared(servers, tmp_path,
                                                                                       start_actor):
    """A supervisor restarting a witness that found a rewrite must not make it quietly co-sign again."""
    server, witness = _witnessed_server(servers, tmp_path)
    start_actor(server.http(), "echo", wat.echo_actor())
    _checkpoint(server.http())
    assert witness.once(server.url).returncode == 0
    other = servers("other", args=("--witness-key", witness.key()))  # another signing key at another URL
    _checkpoint(other.http())
    assert witness.once(other.url).returncode == 2
    [evidence] = witness.evidence()
    mark = json.loads((witness.home / "witness" / "halted.json").read_text())
    assert mark["evidence"] == str(evidence) and mark["kind"] == "a checkpoint signed by another key"
    # Restarted, even against the honest server, it refuses and names the evidence.
    halted = witness.once(server.url)
    assert halted.returncode == 3, (halted.stdout, halted.stderr)
    assert "WITNESS HALTED" in halted.stderr and str(evidence) in halted.stderr and "--clear-halt" in halted.stderr
    assert "Traceback" not in halted.stderr
    second = _checkpoint(server.http())
    assert not server.http().ok("GET", f"/v1/audit/checkpoints/{second['number']}")["cosignatures"]
    cleared = subprocess.run(witness._args("--clear-halt"), capture_output=True, text=True, timeout=WAIT, cwd=ROOT,
                             env=cli_env())
    assert cleared.returncode == 0 and str(evidence) in cleared.stdout, cleared.stderr
    assert witness.evidence() == [evidence]  # the evidence stays
    done = witness.once(server.url)
    assert done.returncode == 0, done.stderr
    assert server.http().ok("GET", f"/v1/audit/checkpoints/{second['number']}")["cosignatures"]


def test_halt_mark_that_is_not_json_still_halts(tmp_path):
    witness = WitnessProcess(tmp_path)
    (witness.home / "witness").mkdir(parents=True)
    (witness.home / "witness" / "halted.json").write_text("{half")
    halted = witness.once("http://127.0.0.1:9")
    assert halted.returncode == 3 and "a halt mark that is not JSON" in halted.stderr, halted.stderr


def test_record_that_does_not_reexecute_is_caught_as_a_divergence(servers, tmp_path, start_actor):
    honest = servers("honest")
    http = honest.http()
    actor = start_actor(http, "echo", wat.echo_actor())
    answer = http.ok("POST", f"/v1/actors/{actor}/request", {"message": {"base64": base64.b64encode(b"ping")
                                                                                    .decode()}})
    assert answer
    _stop(honest)
    # A home whose record says the actor answered "pong" to "ping": self-consistent, signed, but not what the
    # component computes.
    rewrite_home(honest.home / "store", tmp_path / "lying" / "store",
                 change=lambda e: replaced(e.data, b"ping", b"pong") if e.type == "wasm/result" else None)
    witness = WitnessProcess(tmp_path, "fresh-witness")
    lying = servers("lying", args=("--no-resume", "--witness-key", witness.key()))
    _checkpoint(lying.http())
    done = witness.once(lying.url)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "witness found a divergence" in done.stderr
    report = json.loads(witness.evidence()[0].read_text())["divergence"]
    assert report["actor"] == actor and report["error"] == "Divergence" and "handle-request" in report["what"]


def test_cosignature_by_an_unknown_key_is_refused(servers, tmp_path, start_actor):
    server, _ = _witnessed_server(servers, tmp_path)
    http = server.http()
    start_actor(http, "echo", wat.echo_actor())
    cp = _checkpoint(http)
    stranger = WitnessProcess(tmp_path, "stranger")
    done = stranger.once(server.url)
    assert done.returncode == 1
    assert "403" in done.stderr and "not a witness key this home accepts" in done.stderr
    assert http.ok("GET", f"/v1/audit/checkpoints/{cp['number']}")["cosignatures"] == []


def test_forged_cosignature_is_refused(servers, tmp_path, start_actor):
    from store.checkpoint import Cosigner

    server, witness = _witnessed_server(servers, tmp_path)
    http = server.http()
    actor = start_actor(http, "echo", wat.echo_actor())
    first = _checkpoint(http)
    assert witness.once(server.url).returncode == 0
    genuine = http.ok("GET", f"/v1/audit/checkpoints/{first['number']}")["cosignatures"][0]["line"]
    _send(http, actor, 1)
    second = _checkpoint(http)
    key = CosignerKey.parse(witness.key())
    # Someone without the witness's key: its name and key id, and a signature made with another key.
    forger = Cosigner(load_or_create_seed(tmp_path / "forger.key"), key.name)
    forged = forger.cosign(second["note"], 1_800_000_000).line
    forged = forged.split(" ")[0] + " " + forged.split(" ")[1] + " " + base64.b64encode(
        key.key_id + base64.b64decode(forged.split(" ")[2])[4:]).decode()
    replayed = genuine  # the witness's genuine cosignature of checkpoint 1, posted for checkpoint 2
    for line in (forged, replayed):
        reply = http.post(f"/v1/audit/checkpoints/{second['number']}/cosignatures", {"cosignature": line})
        assert reply.status == 403, reply.body
        assert reply.json["error"] == "CosignatureRefused" and "does not verify" in reply.json["message"]
    assert http.ok("GET", f"/v1/audit/checkpoints/{second['number']}")["cosignatures"] == []


def test_witness_without_the_servers_token_is_refused(servers, tmp_path, start_actor):
    witness = WitnessProcess(tmp_path)
    server = servers(env={"THEATER_TOKEN": "s3cret"}, args=("--witness-key", witness.key()))
    http = server.http("s3cret")
    start_actor(http, "echo", wat.echo_actor())
    cp = _checkpoint(http)
    assert server.http().get("/v1/audit/feed").status == 401  # the feed is behind the token like every route
    refused = witness.once(server.url)
    assert refused.returncode == 1 and "401" in refused.stderr
    done = witness.once(server.url, "--token", "s3cret")
    assert done.returncode == 0, done.stderr
    assert _round(done)["number"] == cp["number"]


def test_restarted_witness_goes_back_to_the_instance_start_for_a_guest_with_hidden_state(servers, tmp_path,
                                                                                         start_actor):
    """A guest that keeps state in a global between calls behaves differently on a fresh instance made from the
    recorded state: a restarted witness must not call that a divergence, but re-execute from the instance's start."""
    server, witness = _witnessed_server(servers, tmp_path)
    http = server.http()
    actor = start_actor(http, "hidden", wat.actor_wat(send=wat.hidden_count()))
    _send(http, actor, 3)
    _checkpoint(http)
    assert witness.once(server.url).returncode == 0
    _send(http, actor, 2)
    second = _checkpoint(http)
    done = witness.once(server.url)  # a new process: no live instance kept
    assert done.returncode == 0, done.stderr
    assert _round(done)["calls"] == 6  # init and all five messages, on the instance the record made
    assert http.ok("GET", f"/v1/audit/checkpoints/{second['number']}")["cosignatures"]
    assert not witness.evidence()


def test_witness_copies_spilled_payloads_small_and_large(servers, tmp_path, start_actor):
    server, witness = _witnessed_server(servers, tmp_path)
    http = server.http()
    actor = start_actor(http, "echo", wat.echo_actor())
    for size in (20_000, 400_000):  # spilled to the blob store; inline in the feed page, then fetched alone
        payload = base64.b64encode(bytes(range(256)) * (size // 256)).decode()
        http.ok("POST", f"/v1/actors/{actor}/request", {"message": {"base64": payload}})
    cp = _checkpoint(http)
    done = witness.once(server.url)
    assert done.returncode == 0, done.stderr
    assert _round(done)["size"] == cp["size"]
    with Store(witness.home / "store", readonly=True) as copied:
        assert len([d for d in copied.blobs if copied.blobs.size(d) > 256 * 1024]) == 1


def test_server_reads_witness_keys_from_a_file_and_refuses_a_bad_one(servers, tmp_path, start_actor):
    witness = WitnessProcess(tmp_path)
    keys = tmp_path / "witnesses.txt"
    keys.write_text(f"# the witnesses of this home\n\n{witness.key()}\n")
    server = servers(args=("--witness-key", str(keys)))
    start_actor(server.http(), "echo", wat.echo_actor())
    _checkpoint(server.http())
    assert witness.once(server.url).returncode == 0
    home_key = server.http().ok("GET", "/v1/audit/key")["key"]  # a signing key (0x01), not a witness key (0x04)
    done = server.cli("server", "--address", "127.0.0.1:0", "--witness-key", home_key, check=False)
    assert done.returncode != 0 and "witness key" in done.stderr and "0x04" in done.stderr
