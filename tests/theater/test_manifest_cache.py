"""ManifestCache: a manifest's text is parsed once, what depends on the files it names is found again every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from theater.errors import ManifestError
from theater.files import FileAccess
from theater.manifest import ManifestCache, load_manifest, parse_manifest

TEXT = 'name = "echo"\ncomponent = "echo.wat"\n'


def test_a_cached_parse_gives_what_parse_manifest_gives(tmp_path: Path) -> None:
    (tmp_path / "state.bin").write_bytes(b"\x01")
    text = TEXT + 'init_state = { file = "state.bin" }\n[limits]\nfuel_per_call = 5000\n'
    access = FileAccess.trusted(tmp_path)
    cache = ManifestCache()
    first = cache.parse(text, source="a.toml", files=access)
    again = cache.parse(text, source="a.toml", files=access)
    assert first == again == parse_manifest(text, source="a.toml", files=access)
    assert again.files == access and again.init_state == b"\x01"


def test_the_same_text_and_access_give_the_same_manifest_object(tmp_path: Path) -> None:
    cache = ManifestCache()
    access = FileAccess.trusted(tmp_path)
    assert cache.parse(TEXT, files=access) is cache.parse(TEXT, files=access)


def test_a_component_path_cached_under_the_operators_access_is_refused_to_a_guest(tmp_path: Path) -> None:
    cache = ManifestCache()
    outside = 'name = "x"\ncomponent = "/etc/passwd"\n'
    assert cache.parse(outside, files=FileAccess.trusted(tmp_path)).component.path == Path("/etc/passwd")
    with pytest.raises(ManifestError, match=r"component: a manifest from a guest may name only files inside"):
        cache.parse(outside, files=FileAccess.confined(tmp_path))
    client = FileAccess.none("an API client")
    parsed = cache.parse(outside, files=client)  # kept as written, as parse_manifest does: refused when read
    assert parsed.files is client
    with pytest.raises(ManifestError, match=r"component: a manifest from an API client may not name a file"):
        parsed.files.read(parsed.component.path, limit=100, what="component", source="x", field="component")


def test_an_init_state_file_cached_under_one_access_is_read_again_under_another(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "state.bin").write_bytes(b"from a")
    (tmp_path / "b" / "state.bin").write_bytes(b"from b")
    text = TEXT + 'init_state = { file = "state.bin" }\n'
    cache = ManifestCache()
    assert cache.parse(text, files=FileAccess.trusted(tmp_path / "a")).init_state == b"from a"
    assert cache.parse(text, files=FileAccess.trusted(tmp_path / "b")).init_state == b"from b"
    (tmp_path / "b" / "state.bin").write_bytes(b"changed")
    assert cache.parse(text, files=FileAccess.trusted(tmp_path / "b")).init_state == b"changed"
    with pytest.raises(ManifestError, match=r"init_state.file: a manifest from nobody may not name a file"):
        cache.parse(text, files=FileAccess.none("nobody"))


def test_a_manifest_file_changed_between_loads_is_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "actor.toml"
    path.write_text(TEXT)
    cache = ManifestCache()
    assert load_manifest(path, cache=cache).name == "echo"
    path.write_text(TEXT.replace('"echo"', '"other"'))
    assert load_manifest(path, cache=cache).name == "other"
    path.write_text("name = \n")
    with pytest.raises(ManifestError, match=r"invalid TOML"):
        load_manifest(path, cache=cache)


def test_text_that_fails_to_parse_fails_every_time_and_is_not_kept() -> None:
    cache = ManifestCache()
    for _ in range(2):
        with pytest.raises(ManifestError, match=r"^x.toml: colour: unknown key 'colour'"):
            cache.parse(TEXT + 'colour = "red"\n', source="x.toml")
    assert cache._kept == {}


def test_the_cache_keeps_at_most_its_bytes_and_its_count() -> None:
    cache = ManifestCache(capacity=3, max_bytes=1000)
    texts = [f'name = "a{i}"\ncomponent = "x.wasm"\n' for i in range(10)]
    for text in texts:
        cache.parse(text)
    assert list(key for key, _ in cache._kept) == texts[-3:]
    big = f'name = "big"\ncomponent = "x.wasm"\ndescription = "{"d" * 200}"\n'
    assert cache.parse(big).name == "big"  # more than a tenth of max_bytes: parsed, not kept
    assert big not in {key for key, _ in cache._kept}
    assert cache._bytes <= cache.max_bytes
