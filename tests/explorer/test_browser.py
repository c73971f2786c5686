"""The explorer in a real Chromium (Playwright, the system's browser) on a server running the ping-pong and
supervisor examples: the tree, a timeline, stepping through events with the state diff, replay to here, the
message flow, a new event arriving live, verify, checkpoints, the login, and hostile text shown as text.

Every wait is Playwright's wait for something to appear (with its timeout), never a sleep. Each view's screenshot
is written to the ``artifacts`` folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.components import wat
from tests.explorer.conftest import BIG_CHAIN, NEEDLES, TOKEN, WITNESS_NAME, Stage
from tests.server._harness import start_body

pytestmark = [pytest.mark.integration]
EVENT_COUNT = re.compile(r"^\d+ events?$")  # the end of a filtered list: "1 event", "3 events"


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def test_the_tree_shows_every_actor_with_the_worker_under_its_supervisor(page, stage: Stage, artifacts):
    page.goto(stage.server.url + "/")
    tree = page.locator("#tree")
    worker = tree.locator(f'li.actor[data-id="{stage.supervisor}"] ul.children li.actor[data-id="{stage.worker}"]')
    worker.wait_for()
    assert worker.locator(".restarts").first.inner_text() == "1 restart"
    assert worker.locator(".status").first.inner_text() == "running"
    for actor, name in ((stage.ping, "ping"), (stage.pong, "pong"), (stage.supervisor, "supervisor")):
        assert tree.locator(f'li.actor[data-id="{actor}"] > .line .name').inner_text() == name
    page.locator("#tree-updated").filter(has_text="live").wait_for()
    shot(page, artifacts, "1-actors")


def test_an_actor_timeline_steps_through_events_and_shows_the_state_diff(page, stage: Stage, artifacts):
    page.goto(stage.server.url + "/")
    page.locator(f'li.actor[data-id="{stage.pong}"] .name').click()
    page.locator("#live.live").wait_for()
    rows = page.locator("#timeline .row[data-seq]:not(.placeholder)")
    rows.first.wait_for()
    head = stage.http.ok("GET", f"/v1/actors/{stage.pong}")["head"]["seq"]
    assert rows.count() == head + 1
    assert rows.nth(0).locator(".type").inner_text() == "actor/created"
    shot(page, artifacts, "2-timeline")
    answers = stage.http.ok("GET", f"/v1/actors/{stage.pong}/events?type=wasm/result")["events"]
    first_answer = answers[1]["seq"]
    page.locator(f'#timeline .row[data-seq="{first_answer - 1}"]').click()  # the call of "ping 0"
    page.locator("#call-params").filter(has_text="ping 0").wait_for()
    assert page.locator("#state-unchanged").is_visible()
    page.keyboard.press("ArrowRight")  # to the answer: the state changes
    page.locator("#state-diff").wait_for()
    assert page.locator("h1").inner_text().startswith("wasm/result")
    cells = page.locator("#state-diff tr.op-changed td").all_inner_texts()
    assert cells == ["$.pings", "changed", "0", "1"]
    assert '"pings": 0' in page.locator("#state-before").inner_text()
    assert '"pings": 1' in page.locator("#state-after").inner_text()
    shot(page, artifacts, "3-event-state-diff")
    page.locator("#next").click()
    page.locator("#call-params").filter(has_text="ping 1").wait_for()
    page.locator("#previous").click()
    page.locator("#state-diff").wait_for()


def test_replay_to_an_event_shows_that_the_record_re_executes(page, stage: Stage, artifacts):
    answers = stage.http.ok("GET", f"/v1/actors/{stage.pong}/events?type=wasm/result")["events"]
    seq = answers[2]["seq"]
    page.goto(f"{stage.server.url}/#/event/{stage.pong}/{seq}")
    page.locator("#replay-button").click()
    verdict = page.locator("#report-verdict")
    verdict.wait_for()
    assert verdict.inner_text().startswith("OK: the record re-executes exactly")
    assert f"#0–#{seq}" in verdict.inner_text()
    shot(page, artifacts, "4-replay-to-here")


def test_the_message_flow_draws_each_rally_linked_to_the_events_at_both_ends(page, stage: Stage, artifacts):
    page.goto(f"{stage.server.url}/#/flow?actor={stage.ping}&actor={stage.pong}")
    diagram = page.locator("svg#flow")
    diagram.wait_for()
    labels = diagram.locator(".arrow-label").all_text_contents()
    assert labels[:7] == [f"send: play {stage.pong} 3", "request: ping 0", "reply: pong 0", "request: ping 1",
                          "reply: pong 1", "request: ping 2", "reply: pong 2"]
    shot(page, artifacts, "5-message-flow")
    picker = page.locator("#flow-actors")
    assert picker.locator(f'input[value="{stage.ping}"]').is_checked()
    assert not picker.locator(f'input[value="{stage.supervisor}"]').is_checked()
    request = diagram.locator('g.message.request').first
    sender = request.locator("a.end.from")
    receiver = request.locator("a.end.to")
    assert re.fullmatch(rf"#/event/{stage.ping}/\d+", sender.get_attribute("href"))
    assert re.fullmatch(rf"#/event/{stage.pong}/\d+", receiver.get_attribute("href"))
    receiver.click()
    page.locator("#call-params").filter(has_text="ping 0").wait_for()
    assert page.locator("h1").inner_text().startswith("wasm/call")
    page.go_back()
    diagram.locator('g.message.request').first.locator("a.end.from").click()
    page.locator("#call-result").filter(has_text="pong 0").wait_for()
    assert page.locator(".call-name").inner_text() == "theater:simple/message-server-host/request"


def test_a_new_event_appears_live_after_theater_message(page, stage: Stage, artifacts):
    page.goto(f"{stage.server.url}/#/actor/{stage.pong}")
    page.locator("#live.live").wait_for()
    head = stage.http.ok("GET", f"/v1/actors/{stage.pong}")["head"]["seq"]
    page.locator(f'#timeline .row[data-seq="{head}"]').wait_for()
    assert stage.server.cli("message", stage.pong, "ping 41", "--request").stdout.strip() == "pong 41"
    arrived = page.locator(f'#timeline .row.new[data-seq="{head + 2}"]')  # the call, then its result
    arrived.wait_for()
    assert arrived.locator(".type").inner_text() == "wasm/result"
    assert "ping 41" in page.locator(f'#timeline .row.new[data-seq="{head + 1}"] .summary').inner_text()
    assert page.locator("#event-count").inner_text() == f"{head + 3} events"
    shot(page, artifacts, "6-live-event")


def test_a_filtered_timeline_lists_only_that_type(page, stage: Stage, artifacts):
    kind = "theater:simple/message-server-host/request"
    page.goto(f"{stage.server.url}/#/actor/{stage.ping}?type={kind}")
    rows = page.locator(f'#timeline[data-type="{kind}"] .row')
    page.locator(f'#timeline[data-type="{kind}"] .more').filter(has_text=EVENT_COUNT).wait_for()
    assert set(rows.locator(".type").all_inner_texts()) == {kind}
    assert rows.count() == 3
    page.goto(f"{stage.server.url}/#/actor/{stage.ping}?q=ping%201")
    rows = page.locator('#timeline[data-q="ping 1"] .row')
    page.locator('#timeline[data-q="ping 1"] .more').filter(has_text=EVENT_COUNT).wait_for()
    assert rows.count() >= 1 and all("ping 1" in t for t in rows.locator(".summary").all_inner_texts())
    shot(page, artifacts, "7-timeline-filtered")


def test_a_guest_recorded_script_is_shown_as_text_and_never_run(page, stage: Stage, artifacts):
    hostile = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    answered = stage.http.post(f"/v1/actors/{stage.pong}/request", {"message": {"text": hostile}})
    assert answered.status == 422, answered.body  # pong answers err, recording the text in its chain
    chain = stage.http.ok("GET", f"/v1/actors/{stage.pong}/events?limit=10000")["events"]
    recorded = [e for e in chain if "window.__pwned" in str(e["data"])]
    assert recorded
    for event in recorded:
        page.goto(f"{stage.server.url}/#/event/{stage.pong}/{event['seq']}")
        page.locator("#event-data").wait_for()
        assert "window.__pwned" in page.locator("main").inner_text()
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main script, main img").count() == 0
    page.goto(f"{stage.server.url}/#/actor/{stage.pong}")
    page.locator(f'#timeline .row[data-seq="{recorded[0]["seq"]}"]').wait_for()
    assert page.evaluate("window.__pwned") is None
    page.goto(f"{stage.server.url}/#/event/{stage.pong}/{recorded[0]['seq']}")
    page.locator("#event-data").wait_for()
    shot(page, artifacts, "8-hostile-text")


def test_verify_shows_progress_and_the_report(page, stage: Stage, artifacts):
    page.goto(f"{stage.server.url}/#/verify/{stage.supervisor}")
    page.locator("#verify-button").click()
    page.locator("#report-verdict").wait_for()
    assert page.locator("#report-verdict").inner_text().startswith("OK")
    assert page.locator("#verify-step").inner_text() == "done"
    assert page.evaluate("document.getElementById('verify-progress').value") == \
        page.evaluate("document.getElementById('verify-progress').max")
    shot(page, artifacts, "9-verify")


def test_checkpoints_are_listed_and_signed(page, stage: Stage, artifacts):
    page.goto(f"{stage.server.url}/#/checkpoints")
    page.locator("#sign-checkpoint").click()
    page.locator("#checkpoints table.checkpoints tr td").first.wait_for()
    newest = stage.http.ok("GET", "/v1/audit/checkpoints")["checkpoints"][-1]
    assert page.locator("#checkpoints table tr").nth(1).locator("td").first.inner_text() == str(newest["number"])
    shot(page, artifacts, "10-checkpoints")


def test_checkpoints_show_the_witnesses_that_cosigned_them(page, witnessed, artifacts):
    http = witnessed.server.http()
    first = http.ok("POST", "/v1/audit/checkpoints", status=201)
    second = http.ok("POST", "/v1/audit/checkpoints", status=201)
    cosignature = witnessed.cosigner.cosign(second["note"], 1_767_225_600)  # 2026-01-01 00:00:00 UTC
    http.ok("POST", f"/v1/audit/checkpoints/{second['number']}/cosignatures", {"cosignature": cosignature.line},
            status=201)
    page.goto(f"{witnessed.server.url}/#/checkpoints")
    signed = page.locator(f'#checkpoints tr[data-number="{second["number"]}"] li.cosigner')
    signed.wait_for()
    assert signed.get_attribute("data-name") == WITNESS_NAME
    assert signed.locator(".name").inner_text() == WITNESS_NAME  # markup in the name is text, not markup
    assert page.locator("#checkpoints i").count() == 0
    assert signed.locator("time").inner_text() == "2026-01-01 00:00:00 UTC"
    unsigned = page.locator(f'#checkpoints tr[data-number="{first["number"]}"] td.cosignatures')
    assert unsigned.inner_text() == "no witness yet"
    shot(page, artifacts, "10b-checkpoints-cosigned")


def test_timeline_search_goes_through_the_search_api_and_pages(page, searchable, artifacts):
    server, actor = searchable
    searched: list[str] = []
    listed: list[str] = []
    page.on("request", lambda r: (searched if "/v1/events/search?" in r.url else
                                  listed if f"/v1/actors/{actor}/events?" in r.url else []).append(r.url))
    page.goto(f"{server.url}/#/actor/{actor}?q=needle")
    more = page.locator('#timeline[data-q="needle"] .more')
    more.filter(has_text="scroll for more").wait_for()
    rows = page.locator('#timeline[data-q="needle"] .row')
    assert rows.count() == 200  # one page of the server's
    page.locator("#timeline").evaluate("t => { t.scrollTop = t.scrollHeight; }")
    more.filter(has_text=EVENT_COUNT).wait_for()
    assert more.inner_text() == f"{NEEDLES} events"
    summaries = rows.locator(".summary").all_inner_texts()
    assert len(summaries) == NEEDLES and all("needle" in text for text in summaries)
    assert [row for row in summaries if "straw" in row] == []
    assert len(searched) == 2, searched  # two pages, the second from the first one's cursor
    assert "after=" not in searched[0] and "after=" in searched[1]
    assert all("q=needle" in url and f"actor={actor}" in url for url in searched)
    assert listed == []  # never the per-actor listing filtered in the page
    shot(page, artifacts, "7b-timeline-search-paged")


def test_log_in_on_a_token_protected_server(page, token_server, artifacts):
    counter = token_server.http(TOKEN).ok("POST", "/v1/actors", start_body("counter", wat.counter_actor()), status=201)
    page.goto(token_server.url + "/")
    page.wait_for_url(re.compile(r".*/login$"))
    shot(page, artifacts, "11-login")
    page.fill("#token", "wrong")
    page.click("#login-button")
    page.locator("#login-error").filter(has_text="Unauthorized").wait_for()
    page.fill("#token", TOKEN)
    page.click("#login-button")
    page.wait_for_url(re.compile(r".*/$"))
    page.locator("#tree").wait_for()
    assert page.locator("#logout").is_visible()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["theater_session"]["httpOnly"] and cookies["theater_session"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    page.locator(f'li.actor[data-id="{counter["id"]}"] .name').click()
    page.locator("#live.live").wait_for()  # the event stream opened with the cookie
    token_server.http(TOKEN).ok("POST", f"/v1/actors/{counter['id']}/send", {"message": {"text": "add"}})
    page.locator("#timeline .row.new").first.wait_for()
    shot(page, artifacts, "12-logged-in")
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r".*/login$"))


def test_replay_to_a_forged_event_shows_the_divergence_side_by_side(page, forged, artifacts):
    page.goto(f"{forged.server.url}/#/event/{forged.actor}/{forged.seq}")
    page.locator("#replay-button").click()
    page.locator("#divergence").wait_for()
    assert page.locator("#report-verdict").inner_text().startswith("DIVERGED")
    assert '"pong 9"' in page.locator("#divergence-expected").inner_text()
    assert '"pong 0"' in page.locator("#divergence-actual").inner_text()
    shot(page, artifacts, "13-replay-divergence")


@pytest.mark.slow
def test_a_million_event_timeline_scrolls_by_pages_from_the_server(page, big_chain, artifacts):
    server, actor = big_chain
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "/events?" in r.url else None)
    page.goto(f"{server.url}/#/actor/{actor}")
    page.locator('#timeline .row[data-seq="0"]:not(.placeholder)').wait_for()
    assert page.locator("#event-count").inner_text() == f"{BIG_CHAIN} events"
    timeline = page.locator("#timeline")
    timeline.evaluate("t => { t.scrollTop = t.scrollHeight; }")
    last = page.locator(f'#timeline a.row[data-seq="{BIG_CHAIN - 1}"]')
    last.wait_for()
    assert last.locator(".type").inner_text() == "wasm/call"
    assert f"tick {BIG_CHAIN - 1}" in last.locator(".summary").inner_text()
    timeline.evaluate("t => { t.scrollTop = (t.scrollHeight - t.clientHeight) / 2; }")
    middle = page.locator("#timeline a.row").first
    page.wait_for_function("() => { const r = document.querySelector('#timeline a.row'); "
                           "return r && Math.abs(Number(r.dataset.seq) - 500000) < 100; }")
    shot(page, artifacts, "14-million-events")
    middle.click()
    page.locator("#event-data").wait_for()
    assert len(fetched) <= 10, fetched  # a page per place looked at: never the whole chain
    assert all("limit=200" in url for url in fetched)


def test_a_delivery_links_to_the_sending_event_its_causal_link_names(page, linked, artifacts):
    page.goto(f"{linked.server.url}/#/event/{linked.receiver}/5")
    sender = page.locator("#cause")
    sender.wait_for()
    shot(page, artifacts, "15-causal-link")
    sender.click()
    page.locator("h1").filter(has_text="#4").wait_for()
    assert page.locator(".call-name").inner_text() == "theater:simple/message-server-host/request"
    assert page.url.endswith(f"#/event/{linked.sender}/4")
