"""The checksum- and parameter-keyed slice cache (benchbox.data.cache)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchbox.data import io
from benchbox.data.cache import SliceCache, cache_key, file_digest
from benchbox.data.cases import open_cases
from benchbox.data.paths import cache_root

pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_cache_root_follows_the_environment(isolated_cache, monkeypatch):
    assert cache_root() == isolated_cache
    monkeypatch.delenv("BENCHBOX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert str(cache_root()) == "/somewhere/benchbox"


def test_file_digest_follows_content(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    d1 = file_digest(f)
    f.write_bytes(b"abd")
    assert file_digest(f) != d1
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "1.dcm").write_bytes(b"x")
    d2 = file_digest(folder)
    (folder / "2.dcm").write_bytes(b"y")
    assert file_digest(folder) != d2


def test_cache_key_is_stable_and_sensitive():
    assert cache_key(a=1, b=[1, 2]) == cache_key(b=[1, 2], a=1)
    assert cache_key(a=1) != cache_key(a=2)


def test_put_get_roundtrip(isolated_cache):
    cache = SliceCache()
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "m": np.eye(3, dtype=np.uint8)}
    cache.put("k1", arrays, {"x": 1}, compress=("m",))
    entry = cache.get("k1")
    assert entry is not None and entry.meta["x"] == 1
    assert isinstance(entry.array("a"), np.memmap)  # read lazily from disk
    np.testing.assert_array_equal(entry.array("a"), arrays["a"])
    np.testing.assert_array_equal(entry.array("m"), arrays["m"])
    assert (isolated_cache / "slices" / "k1" / "m.npz").exists()
    assert cache.get("other") is None
    assert not list((isolated_cache / "slices").glob(".tmp-*"))


def test_damaged_entry_is_dropped(isolated_cache):
    cache = SliceCache()
    cache.put("k", {"a": np.zeros(3)}, {})
    (isolated_cache / "slices" / "k" / "a.npy").unlink()
    assert cache.get("k") is None
    assert not (isolated_cache / "slices" / "k").exists()


def test_disabled_cache_keeps_entries_in_memory(isolated_cache):
    cache = SliceCache(enabled=False)
    entry = cache.put("k", {"a": np.ones(2)}, {})
    np.testing.assert_array_equal(entry.array("a"), np.ones(2))
    assert cache.get("k") is None and not (isolated_cache / "slices").exists()


class _CountingReader:
    def __init__(self, monkeypatch):
        self.calls = []
        original = io.read_sitk

        def counted(path):
            self.calls.append(str(path))
            return original(path)

        monkeypatch.setattr(io, "read_sitk", counted)


def _arrays(ds):
    return [
        (v.case_id, np.asarray(v.a).copy(), np.asarray(v.mask).copy())
        for s in ("train", "val", "test")
        for v in ds.volumes(s)
    ]


def test_second_build_reads_no_image_and_changes_rebuild(make_cases, monkeypatch, isolated_cache):
    root, cfg = make_cases(3)
    reader = _CountingReader(monkeypatch)
    first = open_cases(str(root), config=str(cfg), image_size=32)
    assert len(reader.calls) == 3 * 4  # FLAIR, T1c, label, brain mask per case
    assert all(p.endswith(".nii.gz") for p in reader.calls)

    reader.calls.clear()
    second = open_cases(str(root), config=str(cfg), image_size=32)
    assert reader.calls == []  # everything came from the cache
    for (c1, a1, m1), (c2, a2, m2) in zip(_arrays(first), _arrays(second), strict=True):
        assert c1 == c2
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(m1, m2)
    assert len(second.split("train")) == len(first.split("train"))

    # Sampling options are applied after the cache: no rebuild.
    open_cases(str(root), config=str(cfg), image_size=32, lesion_fraction=0.5, slices_per_case=4)
    assert reader.calls == []

    # A preprocessing parameter changes the key: every case is rebuilt.
    open_cases(str(root), config=str(cfg), image_size=32, percentiles="1,99")
    assert len(reader.calls) == 12
    reader.calls.clear()

    # Editing one source file rebuilds that case only.
    target = root / "case01" / "flair.nii.gz"
    img = io.read_image(target)
    io.write_image(img.array * 2 + 1, target, reference=img)
    reader.calls.clear()
    third = open_cases(str(root), config=str(cfg), image_size=32)
    assert sorted({p.split("/")[-2] for p in reader.calls}) == ["case01"]
    assert len(reader.calls) == 4
    assert third.config()["cache"] == str(isolated_cache / "slices")


def test_cache_off_reads_every_time(make_cases, monkeypatch, isolated_cache):
    root, cfg = make_cases(2)
    reader = _CountingReader(monkeypatch)
    for _ in range(2):
        open_cases(
            str(root),
            config=str(cfg),
            image_size=32,
            cache=False,
            test_fraction=0.5,
            val_fraction=0,
        )
    assert len(reader.calls) == 2 * 2 * 4
    assert not (isolated_cache / "slices").exists()


def test_meta_is_json(make_cases, isolated_cache):
    root, cfg = make_cases(2)
    open_cases(str(root), config=str(cfg), image_size=32, test_fraction=0.5, val_fraction=0)
    metas = list((isolated_cache / "slices").glob("*/meta.json"))
    assert len(metas) == 2
    meta = json.loads(metas[0].read_text())
    assert {"reference", "orientation", "box", "fit", "spacing"} <= set(meta)


def test_a_decompressed_array_is_not_kept_by_its_entry(tmp_path):
    # Every case's entry keeping its decompressed arrays grew a 3D run's memory with the
    # number of cases read; memory maps hold no data and are kept.
    cache = SliceCache(tmp_path)
    big, small = np.arange(1000, dtype=np.uint8), np.ones((4, 4), np.float32)
    cache.put("k", {"big": big, "small": small}, {"n": 1}, compress=("big",))
    entry = cache.get("k")
    assert entry is not None
    first, again = entry.array("big"), entry.array("big")
    assert np.array_equal(first, big) and first is not again
    assert isinstance(entry.array("small"), np.memmap)
    assert entry.array("small") is entry.array("small")
