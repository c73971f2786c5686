"""Build the supervisor, start two workers, crash one, and see the supervisor hear it and the runtime restart it.

    .venv/bin/python examples/supervisor/supervise.py --home .theater
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from replay import Replayer
from store import verify_chain
from theater.build import build_project
from theater.errors import GuestFault
from theater.runtime import Theater

HERE = Path(__file__).resolve().parent
WAIT_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=".theater", help="the Theater home (default: .theater)")
    args = parser.parse_args()
    with Theater(args.home) as theater:
        result = build_project(HERE, store=theater.store)
        print(f"supervisor: {result.how} ({result.wasm.relative_to(HERE)})")
        boss = theater.start(HERE / "manifest.toml")
        workers = [theater.request(boss, b"start").decode() for _ in range(2)]
        print(f"supervisor {boss}\nworkers    {' '.join(workers)}")
        print(f"worker 1 says: {theater.request(workers[0], b'work').decode()}")
        try:
            theater.request(workers[0], b"crash")
        except GuestFault as fault:
            print(f"worker 1 failed: {fault.detail.splitlines()[-1]}")
        report = _wait_for_failure(theater, boss)
        print(f"the supervisor heard: {report}")
        print(f"worker 1 is {theater.status(workers[0])} again: {theater.request(workers[0], b'work').decode()}")
        for actor, _ in theater.store.log.actors():
            ok = verify_chain(theater.store, actor).ok and Replayer(theater.store).replay(actor).ok
            print(f"  {actor}: {'verified' if ok else 'BROKEN'}")
    print(f"\nnext:\n  theater --home {args.home} events {boss}\n  theater --home {args.home} events {workers[0]}")


def _wait_for_failure(theater: Theater, boss: str) -> dict:
    """The supervisor hears of the failure through its mailbox, shortly after the failed request returns."""
    deadline = time.monotonic() + WAIT_S
    while True:
        report = json.loads(theater.request(boss, b"report"))
        if report["failures"] or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


if __name__ == "__main__":
    main()
