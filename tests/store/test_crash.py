"""Crash safety: a writer killed with SIGKILL at a random moment loses no acknowledged append and leaves every
chain a valid prefix."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from store import Store, verify_store

HERE = Path(__file__).parent
ACTORS = [uuid.UUID(int=(i + 1) << 64 | 0xC0FFEE) for i in range(6)]
WAIT = 30.0


def crash_once(path: Path, durability: str, seed: int, delay: float) -> list[tuple[uuid.UUID, int, str]]:
    """Run the writer child, kill it ``delay`` seconds after it is ready; return the appends it reported durable."""
    lines: list[str] = []
    ready = threading.Event()
    with subprocess.Popen(
        [sys.executable, str(HERE / "_crash_writer.py"), str(path), durability, str(seed), *(a.hex for a in ACTORS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:

        def read() -> None:
            for line in child.stdout:
                if line == "ready\n":
                    ready.set()
                else:
                    lines.append(line)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            assert ready.wait(WAIT), f"the writer never became ready: {child.stderr.read()}"
            time.sleep(delay)  # not a wait for anything: the random moment of the crash
            assert child.poll() is None, f"the writer died by itself: {child.stderr.read()}"
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(WAIT)
            reader.join(WAIT)
        assert child.returncode == -signal.SIGKILL
    durable = []
    for line in lines:
        if line.endswith("\n"):  # a line cut by the kill was never complete, so never acknowledged
            actor, seq, digest = line.split()
            durable.append((uuid.UUID(hex=actor), int(seq), digest))
    return durable


def check_after_crash(path: Path, durable: list[tuple[uuid.UUID, int, str]]) -> int:
    with Store(path) as s:
        report = verify_store(s)
        assert report.ok, [p.describe() for p in report.problems]
        for actor, seq, digest in durable:
            assert s.log.at(actor, seq).hash.hex() == digest, f"lost durable append {actor} #{seq}"
            # Found by its hash too, whether its index entry was written or left to the tail the kill cut short.
            assert s.log.locate(bytes.fromhex(digest)) == (actor, seq)
        return report.events


@pytest.mark.slow
def test_killed_writer_loses_no_durable_append_and_leaves_valid_chains(tmp_path) -> None:
    path = tmp_path / "store"
    rng = random.Random(20240601)
    events = 0
    total_durable = 0
    rounds = [("sync", r) for r in range(15)] + [("buffered", 15)]
    for durability, seed in rounds:
        durable = crash_once(path, durability, seed, rng.uniform(0.05, 0.4))
        total_durable += len(durable)

        after = check_after_crash(path, durable)

        assert after >= events + len(durable)  # chains only grow, and by at least what was acknowledged
        events = after
    assert total_durable > 100
