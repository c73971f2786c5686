"""``theater store``: the runtime's labels cannot be set or removed from the command line."""

from store import Store, blob_digest
from tests.cli.conftest import run_cli


def test_cli_cannot_write_reserved_label(tmp_path):
    home = tmp_path / "home"
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(b"native code of the attacker")
    digest = run_cli("store", "put", str(tmp_path / "artifact.bin"), home=home).stdout.strip()

    attempts = [
        ("store", "label", f"compiled/{'ab' * 32}/wasmtime-x/y", digest),
        ("store", "label", f"build/{'cd' * 32}", digest),
        ("store", "rm-label", "theater/anything"),
    ]
    for args in attempts:
        done = run_cli(*args, home=home, check=False)
        assert done.returncode == 1, args
        assert done.stderr.startswith(f"ReservedLabelError: label '{args[2]}' is reserved: names starting with")
        assert "Traceback" not in done.stderr

    other = tmp_path / "other.bin"
    other.write_bytes(b"another blob")
    refused = run_cli("store", "put", str(other), "--label", "build/key", home=home, check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("ReservedLabelError: ")
    with Store(home / "store", readonly=True) as store:
        assert store.blobs.labels() == []
        assert not store.blobs.has(blob_digest(b"another blob"))  # a refused label stores nothing


def test_cli_labels_outside_the_reserved_names_still_work(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "blob").write_bytes(b"mine")
    digest = run_cli("store", "put", str(tmp_path / "blob"), "--label", "my/compiled", home=home).stdout.strip()

    assert run_cli("store", "ls", "--labels", home=home).stdout == f"my/compiled\t{digest}\n"
    run_cli("store", "rm-label", "my/compiled", home=home)
