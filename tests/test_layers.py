"""The layering rule of shared/DESIGN.md, made executable: store <- replay <- theater."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    linter = Path(sys.executable).with_name("lint-imports")
    assert linter.exists(), f"import-linter is not installed next to {sys.executable}; install '.[test]'"
    done = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


def test_store_never_imports_wasmtime_even_lazily():
    for path in (ROOT / "store").glob("*.py"):
        text = path.read_text()
        for name in ("import wasmtime", "import click", "import rich", "import theater", "import replay",
                     "from wasmtime", "from click", "from rich", "from theater", "from replay"):
            assert name not in text, f"{path.name} mentions {name!r}; store is a leaf"
