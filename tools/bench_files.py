"""The file work of one supervisor spawn, alone, next to its floor measured in the same run.

    .venv/bin/python tools/bench_files.py              # best of 7 rounds of 2,000
    .venv/bin/python tools/bench_files.py --quick      # best of 7 rounds of 200

A supervisor guest's ``spawn("worker.toml")`` reads the manifest under the tree's confined access (``theater.files``)
and loads the component it names: the manifest's name is checked (resolved, symlinks followed, inside the root),
the file read, its directory taken for the names in it; the text's parse is cached, the component's name checked
again at parse and once more when it is loaded (its stat compared with the component files read before). That is
what this times, with the engine and the store left out (a remembered component is not read; the blob's load is
the engine's, timed by ``tools/bench_start.py``). The floor is what it cannot do without: open, ``fstat``, read
and close the manifest file, and one ``stat`` of the component. Ratios hold on a noisy machine; times do not.
Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from theater import components  # noqa: E402
from theater.files import FileAccess  # noqa: E402
from theater.manifest import ManifestCache, load_manifest  # noqa: E402


class _Blobs:
    def has(self, digest: bytes) -> bool:
        return True


class _Store:
    blobs = _Blobs()


class _Engine:
    def load(self, store: Any, digest: bytes, wasm: bytes | None = None) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="rounds of 200 rather than 2,000")
    args = parser.parse_args()
    number = 200 if args.quick else 2000
    tmp = Path(tempfile.mkdtemp(prefix="theater-bench-files-"))
    try:
        (tmp / "worker.toml").write_text('name = "worker"\ncomponent = "worker.wat"\n')
        (tmp / "worker.wat").write_text("(component)")
        files = FileAccess.confined(tmp, origin="actor bench")
        cache, known = ManifestCache(), components.FileDigests()
        engine, store = _Engine(), _Store()

        def spawn() -> None:
            manifest = load_manifest("worker.toml", files=files, cache=cache)
            components.load_file(engine, store, manifest.files, manifest.component.path,
                                 limit=1 << 20, source=manifest.source, field="component", known=known)

        manifest_file, component_file = str(tmp / "worker.toml"), str(tmp / "worker.wat")

        def floor() -> None:
            fd = os.open(manifest_file, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fstat(fd)
                os.read(fd, 1 << 20)
            finally:
                os.close(fd)
            os.stat(component_file)

        spawn()  # the component remembered, the text parsed once
        value = min(timeit.repeat(spawn, number=number, repeat=7)) / number * 1e6
        base = min(timeit.repeat(floor, number=number, repeat=7)) / number * 1e6
        print("== the file work of one spawn (confined access, cached parse, remembered component) ==")
        print(f"{'file work of one spawn (3 name checks, 1 read)':<62} {value:>10,.2f} us   floor (open+fstat+read+"
              f"close the manifest, stat the component) {base:,.2f} us   ratio {value / base:.2f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
