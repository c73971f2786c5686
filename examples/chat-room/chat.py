"""Build the room, let alice and bob chat over channels, and prove the room's chain by replaying it.

    .venv/bin/python examples/chat-room/chat.py --home .theater
"""

from __future__ import annotations

import argparse
from pathlib import Path

from replay import Replayer
from store import parse_actor_id, verify_chain
from theater.build import build_project
from theater.runtime import Theater

HERE = Path(__file__).resolve().parent
WAIT_S = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=".theater", help="the Theater home (default: .theater)")
    args = parser.parse_args()
    with Theater(args.home) as theater:
        result = build_project(HERE, store=theater.store)
        print(f"room: {result.how} ({result.wasm.relative_to(HERE)})")
        room = theater.start(HERE / "manifest.toml")
        print(f"room {room}")
        alice = theater.open_channel(room, b"alice")
        print(f"alice joins: {alice.welcome.decode()}")
        bob = theater.open_channel(room, b"bob")
        print(f"bob joins:   {bob.welcome.decode()}")
        print(f"alice sees:  {alice.receive(WAIT_S).decode()}")
        alice.send(b"hi bob")
        print(f"bob sees:    {bob.receive(WAIT_S).decode()}")
        bob.send(b"hello alice")
        print(f"alice sees:  {alice.receive(WAIT_S).decode()}")
        alice.close()
        print(f"bob sees:    {bob.receive(WAIT_S).decode()}")
        print(f"members now: {theater.request(room, b'members').decode()}")
        bob.close()
        theater.stop(room)
        key = parse_actor_id(room)
        ok = verify_chain(theater.store, key).ok and Replayer(theater.store).replay(key).ok
        print(f"room: {len(theater.events(room))} events, chain {'verified' if ok else 'BROKEN'}")
    print(f"\nnext:\n  theater --home {args.home} events {room}\n  theater --home {args.home} verify {room}")


if __name__ == "__main__":
    main()
