import subprocess
import sys
from pathlib import Path

import pytest

from tests.components import wat
from theater.runtime import Theater

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, home: Path, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real ``theater`` CLI in a subprocess."""
    done = subprocess.run(
        [sys.executable, "-c", "from theater.cli import main; main()", "--home", str(home), *args],
        capture_output=True, text=True, input=input, timeout=120, cwd=ROOT,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"theater {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture
def recorded(tmp_path):
    """A home with a clock actor that received three messages, stopped; returns (home, actor id)."""
    (tmp_path / "clock.wat").write_text(wat.clock_actor())
    (tmp_path / "clock.toml").write_text('name = "clock"\ncomponent = "clock.wat"\n[[handlers]]\ntype = "timing"\n')
    home = tmp_path / "home"
    with Theater(home) as theater:
        actor = theater.start(tmp_path / "clock.toml")
        for _ in range(3):
            theater.send(actor, b"tick")
        theater.stop(actor)
    return home, actor
