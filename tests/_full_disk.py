"""A real full disk for the tests: a small tmpfs mounted under the test's directory, filled and freed on demand.

Mounting needs root (or CAP_SYS_ADMIN); where it is not permitted the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIZE = 64 << 20  # bytes: room for a home with a few actors (LMDB grows its file as pages are written)
CHUNKS = (1 << 20, 64 << 10, 4 << 10)  # filler write sizes, largest first: the last one fills the last page


class FullDisk:
    """A tmpfs at ``path``: ``fill()`` takes every free byte with a filler file, ``free()`` gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self, *, leave: int = 0) -> None:
        """Write the filler until the filesystem refuses another byte, then give back ``leave`` bytes of it (so a
        larger write is taken only in part: a short write)."""
        with self._filler.open("ab", buffering=0) as out:
            for size in CHUNKS:
                block = b"\xff" * size
                while True:
                    try:
                        written = out.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
                    if written < size:
                        break
        assert self.free_bytes() < CHUNKS[-1], f"the tmpfs at {self.path} still has {self.free_bytes()} bytes free"
        if leave:
            os.truncate(self._filler, self._filler.stat().st_size - leave)

    def free(self) -> None:
        """Remove the filler."""
        self._filler.unlink(missing_ok=True)

    def free_bytes(self) -> int:
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize


@contextmanager
def full_disk_at(path: Path, size: int = SIZE) -> Iterator[FullDisk]:
    """Mount a tmpfs of ``size`` bytes at ``path`` (created), yield it, unmount it; skip when mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("a real full disk needs `mount` (to mount a small tmpfs); it is not installed")
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"a real full disk needs a tmpfs, and mounting one was refused: {done.stderr.strip()}")
    try:
        yield FullDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
