"""The process ``test_tape_holding`` kills: a runtime whose sleeper actor is in the middle of a long call (many host
calls, then a sleep of a day) while another actor answers requests, one after the other, for as long as it lives.

    python _tape_crash_child.py HOME SLEEPER_MANIFEST ANSWERER_MANIFEST

Prints ``sleeper ID`` and ``answerer ID`` once each is started, then ``ack HEX`` for every reply it got (a reply is
released only once the events that produced it are durable), the sleeper's id only once its long call's events are
in the store. Runs until it is killed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from theater.runtime import Theater  # noqa: E402

LOG = "theater:simple/runtime/log"
WAIT_S = 30


def main(home: str, sleeper_manifest: str, answerer_manifest: str) -> None:
    theater = Theater(Path(home), durability="buffered")
    sleeper = theater.start(Path(sleeper_manifest))
    answerer = theater.start(Path(answerer_manifest))
    print("answerer", answerer, flush=True)
    stored = threading.Event()

    def look() -> None:
        types = [e.type for e in theater.events(sleeper)]
        if types[-1:] == [LOG] and types.count(LOG) == 200:
            stored.set()

    theater.store.add_commit_listener(lambda: stored.is_set() or look())
    theater.router.deliver_send(theater.router.get(sleeper), b"long")
    told = False
    n = 0
    while True:
        message = b"m%d" % n
        reply = theater.request(answerer, message, timeout=WAIT_S)
        assert reply == message
        print("ack", message.hex(), flush=True)
        n += 1
        if not told and stored.is_set():
            print("sleeper", sleeper, flush=True)
            told = True


if __name__ == "__main__":
    main(*sys.argv[1:4])
