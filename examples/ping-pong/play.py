"""Build ping and pong, start both, let them play, and prove both chains by replaying them.

    .venv/bin/python examples/ping-pong/play.py --home .theater --rallies 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from replay import Replayer
from store import parse_actor_id, verify_chain
from theater.build import build_project
from theater.runtime import Theater

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=".theater", help="the Theater home (default: .theater)")
    parser.add_argument("--rallies", type=int, default=3)
    args = parser.parse_args()
    with Theater(args.home) as theater:
        for name in ("pong", "ping"):
            result = build_project(HERE / name, store=theater.store)
            print(f"{name}: {result.how} ({result.wasm.relative_to(HERE)})")
        pong = theater.start(HERE / "pong" / "manifest.toml")
        ping = theater.start(HERE / "ping" / "manifest.toml")
        theater.send(ping, f"play {pong} {args.rallies}".encode())
        print(f"ping {ping}\npong {pong}")
        print(f"ping's score: {json.loads(theater.request(ping, b'score'))}")
        for actor in (ping, pong):
            theater.stop(actor)
        for name, actor in (("ping", ping), ("pong", pong)):
            key = parse_actor_id(actor)
            ok = verify_chain(theater.store, key).ok and Replayer(theater.store).replay(key).ok
            print(f"{name}: {len(theater.events(actor))} events, chain {'verified' if ok else 'BROKEN'}")
    print(f"\nnext:\n  theater --home {args.home} events {ping}\n  theater --home {args.home} verify {pong}")


if __name__ == "__main__":
    main()
