"""The layering rules, made executable: store <- replay <- theater (shared/DESIGN.md), and handlers and
supervision see the runtime only through theater.host (docs/handlers.md)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    linter = Path(sys.executable).with_name("lint-imports")
    assert linter.exists(), f"import-linter is not installed next to {sys.executable}; install '.[test]'"
    done = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " kept, 0 broken" in done.stdout
    for contract in ("Handlers see the runtime only through theater.host",
                     "Supervision sees actors and the runtime only through theater.host",
                     "The host interface is protocols only: it imports no part of the runtime"):
        assert f"{contract} KEPT" in done.stdout, done.stdout


def test_handlers_and_supervision_hide_no_imports_behind_type_checking():
    # import-linter sees imports under ``if TYPE_CHECKING:`` too; this says why there are none: the protocols of
    # theater.host are what handlers and supervision are typed against, so no cycle needs hiding.
    paths = [*(ROOT / "theater" / "handlers").glob("*.py"), ROOT / "theater" / "supervision.py",
             ROOT / "theater" / "host.py", ROOT / "theater" / "actor.py", ROOT / "theater" / "channels.py",
             ROOT / "theater" / "router.py"]
    for path in paths:
        assert "TYPE_CHECKING" not in path.read_text(), f"{path.relative_to(ROOT)} hides an import cycle"


def test_store_never_imports_wasmtime_even_lazily():
    for path in (ROOT / "store").glob("*.py"):
        text = path.read_text()
        for name in ("import wasmtime", "import click", "import rich", "import theater", "import replay",
                     "from wasmtime", "from click", "from rich", "from theater", "from replay"):
            assert name not in text, f"{path.name} mentions {name!r}; store is a leaf"
