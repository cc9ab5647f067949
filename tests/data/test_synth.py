from __future__ import annotations

from pathlib import Path

import numpy as np

from audiofcn.data.synth import TAG_VOCABULARY, SynthConfig, render_song, synth_catalog
from audiofcn.io import load_audio, read_manifest, validate_manifest

CFG = SynthConfig(sample_rate=8000, duration=2.0)
SHORT = SynthConfig(sample_rate=8000, duration=0.5)


def test_song_stems_sum_to_mix_and_tags_follow_parts() -> None:
    song = render_song(7, CFG)
    assert song.mix.shape == (16000,) and song.mix.dtype == np.float32
    np.testing.assert_allclose(sum(song.stems.values()), song.mix, atol=1e-6)
    assert 0.5 < np.abs(song.mix).max() <= 0.9 + 1e-6
    assert set(song.tags) <= set(TAG_VOCABULARY)
    for name, tag in song.parts.items():
        assert tag in song.tags
        assert np.abs(song.stems[name]).max() > 1e-3, f"stem {name} is silent"
    assert ("drums" in song.tags) == ("drums" in song.stems)
    assert ("vocals" in song.tags) == ("vocals" in song.stems)
    assert sum(t in song.tags for t in ("major", "minor")) == 1
    np.testing.assert_allclose(song.vocals + song.accompaniment, song.mix, atol=1e-6)


def test_render_is_seeded() -> None:
    a, b, c = render_song(3, CFG), render_song(3, CFG), render_song(4, CFG)
    np.testing.assert_array_equal(a.mix, b.mix)
    assert a.tags == b.tags
    assert not np.array_equal(a.mix, c.mix)


def test_catalog_writes_audio_stems_and_manifest(tmp_path: Path) -> None:
    records = synth_catalog(tmp_path, 10, seed=1, config=SHORT, with_stems=True, progress=False,
                            workers=1)
    assert read_manifest(tmp_path / "manifest.jsonl") == records
    assert validate_manifest(records, root=tmp_path) == []
    assert {r.split for r in records} == {"train", "valid", "test"}
    mix, sr = load_audio(records[0].resolve(tmp_path))
    stems = sum(load_audio(tmp_path / p)[0] for p in records[0].stems.values())
    assert sr == 8000 and np.allclose(mix, stems, atol=1e-5)
    # Same seed, parallel rendering: identical catalog.
    again = synth_catalog(tmp_path / "b", 10, seed=1, config=SHORT, progress=False, workers=2)
    assert [r.tags for r in again] == [r.tags for r in records]
