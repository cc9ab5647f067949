from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from audiofcn.diarization import Segment

pytest.importorskip("pyannote.metrics")
ROOT = Path(__file__).resolve().parents[2]


def load_evaluate():
    spec = importlib.util.spec_from_file_location("diar_evaluate",
                                                  ROOT / "recipes/diarization/evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_der_scoring_conventions() -> None:
    ev = load_evaluate()
    ref = [Segment(0.0, 4.0, "a"), Segment(5.0, 9.0, "b")]
    item = ("conv", np.zeros(10 * 16000, np.float32), ref)
    perfect = ev.score([item], [[Segment(0.0, 4.0, "x"), Segment(5.0, 9.0, "y")]], [2])
    assert perfect["der"] == pytest.approx(0.0) and perfect["exact_count"] == 1.0
    # a 0.2-s boundary shift sits inside the +-0.25 s collar
    shifted = ev.score([item], [[Segment(0.2, 4.0, "x"), Segment(5.0, 9.0, "y")]], [2])
    assert shifted["der"] == pytest.approx(0.0)
    # one label for both speakers: half the speech is confused
    merged = ev.score([item], [[Segment(0.0, 4.0, "x"), Segment(5.0, 9.0, "x")]], [1])
    assert merged["confusion"] == pytest.approx(0.5, abs=0.07)
    assert merged["exact_count"] == 0.0


def test_meeting_condition_cuts_short_turns(tmp_path, synth_voice) -> None:
    import json

    import soundfile as sf

    ev = load_evaluate()
    (tmp_path / "root").mkdir()
    rows = []
    for k in range(4):
        for j in range(3):
            rel = f"so{k}_{j}.wav"
            x = synth_voice(100.0 + 40 * k, 0.5 + 0.3 * k, 4.0, 10 * k + j)
            sf.write(tmp_path / "root" / rel, x, 16000)
            rows.append({"path": rel, "speaker": f"so{k}", "frames": len(x), "sample_rate": 16000,
                         "start": 0, "end": len(x), "split": "valid", "age": None})
    (tmp_path / "speakers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    prefix, turns, sim, off = ev.CONDITIONS["meeting"]
    items = ev.conversations(tmp_path, "valid", 3, sim.overlap_prob, off, prefix=prefix,
                             turns=turns, sim=sim, tag="meeting")
    assert [len({s.speaker for s in it[2]}) for it in items] == [2, 3, 4]
    for uri, audio, ref in items:
        assert uri.startswith("valid_meeting_") and audio.dtype == np.float32
        assert all(s.end - s.start <= 3.0 + 1e-6 for s in ref)
        assert [s.start for s in ref] == sorted(s.start for s in ref)
    # whole utterances (the "so" condition) give 4-s turns, 3 per speaker
    whole = ev.conversations(tmp_path, "valid", 1, 0.0, 0, prefix="so")
    assert len(whole[0][2]) == 6 and all(s.end - s.start > 3.9 for s in whole[0][2])
    with pytest.raises(SystemExit):
        ev.main(["--data", str(tmp_path), "--split", "valid", "--conditions", "nope",
                 "--out", str(tmp_path / "x.json")])
