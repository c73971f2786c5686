"""A real ``theater witness`` process for the tests, homes rewritten behind a server's back, and waits with timeouts."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store import EMPTY, Event, Head, Store
from store.witness import WitnessState, read_state
from tests.server._harness import CLI, ROOT, WAIT, cli_env


class WitnessProcess:
    """``theater witness`` with its own home under ``root``."""

    def __init__(self, root: Path, name: str = "witness") -> None:
        self.home = root / name
        self.process: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()

    def _args(self, *args: str) -> list[str]:
        return [*CLI, "witness", *args, "--home", str(self.home)]

    def key(self) -> str:
        """Its cosigner key (created on first use)."""
        done = subprocess.run(self._args("--print-key"), capture_output=True, text=True, timeout=WAIT, cwd=ROOT,
                              env=cli_env())
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def once(self, url: str, *args: str) -> subprocess.CompletedProcess[str]:
        """One round against ``url``; the finished process (check its code yourself)."""
        return subprocess.run(self._args(url, "--once", *args), capture_output=True, text=True, timeout=120,
                              cwd=ROOT, env=cli_env())

    def start(self, url: str, *args: str) -> WitnessProcess:
        """Follow ``url`` in the background; its stdout lines go to ``lines``."""
        err = (self.home.parent / f"{self.home.name}.err").open("w")
        self.process = subprocess.Popen(self._args(url, *args), stdout=subprocess.PIPE, stderr=err, text=True,
                                        cwd=ROOT, env=cli_env())
        err.close()
        threading.Thread(target=_pump, args=(self.process.stdout, self.lines), daemon=True).start()
        return self

    def stderr(self) -> str:
        path = self.home.parent / f"{self.home.name}.err"
        return path.read_text() if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(WAIT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.kill()

    def state(self) -> WitnessState:
        """Its durable progress, read from its home (it must not be running a round right now)."""
        with Store(self.home / "store", readonly=True) as store:
            found = read_state(store)
        assert found is not None, "the witness kept no state"
        return found

    def wait_cosigned(self, number: int, timeout: float = 120.0) -> int:
        """Wait (reading its output, up to ``timeout`` s) until it says it co-signed checkpoint ``number`` or a
        later one; returns the number it names."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line.startswith("checkpoint ") and int(line.split()[1].rstrip(":")) >= number:
                return int(line.split()[1].rstrip(":"))
        raise AssertionError(f"the witness did not co-sign checkpoint {number} within {timeout} s: {self.stderr()}")

    def evidence(self) -> list[Path]:
        return sorted((self.home / "witness" / "evidence").glob("*.json"))


def _pump(stream: Any, lines: queue.Queue[str]) -> None:
    with stream:
        for line in stream:
            lines.put(line)


def rewrite_home(source: Path, target: Path, change: Callable[[Event], Any] = lambda e: None,
                 extra: int = 0) -> None:
    """Write into ``target`` (a store directory) the log of ``source`` in feed order, re-hashed, with the same
    signing key: each event's data replaced by ``change(event)`` unless that is None; then ``extra`` more events
    on the first chain. What someone holding the home and its key does to rewrite history."""
    target.mkdir(parents=True)
    if (source / "audit").exists():
        shutil.copytree(source / "audit", target / "audit")
    with Store(source, readonly=True) as old, Store(target, durability="buffered") as new:
        for digest in old.blobs:
            new.blobs.put(old.blobs.get(digest))
        heads: dict[Any, Head] = {}
        for entry in old.log.feed(0):
            event = old.log.at(entry.actor, entry.seq)
            data = change(event)
            made = new.log.append(entry.actor, event.type, event.data if data is None else data,
                                  expected=heads.get(entry.actor, EMPTY), timestamp_ms=event.timestamp_ms)
            heads[entry.actor] = Head(made.seq, made.hash)
        first = next(iter(heads), None)
        for n in range(extra):
            made = new.log.append(first, "test/extra", {"n": n}, expected=heads[first])
            heads[first] = Head(made.seq, made.hash)


def replaced(value: Any, old: bytes, new: bytes) -> Any:
    """``value`` with every byte string ``old`` inside it replaced by ``new``."""
    if isinstance(value, bytes):
        return new if value == old else value
    if isinstance(value, dict):
        return {k: replaced(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [replaced(v, old, new) for v in value]
    return value
