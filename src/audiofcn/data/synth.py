"""Built-in music: seeded multi-instrument songs with exact stems and exact tags.

Each song is generated as note sequences (key, mode, tempo, meter, chord progression, bass,
accompaniment, an optional lead melody, an optional vocal-like lead, optional drums), written as
MIDI with ``pretty_midi`` and rendered with the General MIDI soundfont that ships inside
``pretty_midi`` (``TimGM6mb.sf2``) by ``midirenderer``. Every part is rendered on its own, so the
stems are exact and ``mix == sum(stems)`` to float precision; the tags come from the score, so
they are exact too. Nothing is downloaded; the same seed gives the same song.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiofcn.io.audio import resample, save_audio
from audiofcn.io.manifest import AudioRecord, write_manifest

RENDER_SR = 48000  # midirenderer's output rate

# name -> General MIDI programs (0-based) to draw from. The names are the instrument tags.
ACCOMPANIMENT = {
    "piano": [0, 1, 4],
    "organ": [16, 17, 19],
    "guitar": [24, 25, 27],
    "strings": [48, 49],
}
BASS = {"bass": [32, 33, 34, 38]}
LEAD = {
    "flute": [73, 72],
    "violin": [40],
    "trumpet": [56],
    "saxophone": [65, 66],
    "clarinet": [71],
}
# Choir aahs, voice oohs, synth voice: the vocal-like lead line, tagged "vocals".
VOICE = {"vocals": [52, 53, 54]}
INSTRUMENT_TAGS = [*ACCOMPANIMENT, *BASS, *LEAD, *VOICE, "drums"]
TEMPO_TAGS = ["tempo_slow", "tempo_medium", "tempo_fast"]
MODE_TAGS = ["major", "minor"]
METER_TAGS = ["meter_3", "meter_4"]
TAG_VOCABULARY = [*INSTRUMENT_TAGS, *TEMPO_TAGS, *MODE_TAGS, *METER_TAGS]

MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
PROGRESSIONS = [[0, 4, 5, 3], [0, 5, 3, 4], [0, 3, 4, 0], [5, 3, 0, 4], [0, 3, 5, 4]]


@dataclass
class SynthConfig:
    sample_rate: int = 16000
    duration: float = 8.0  # seconds
    p_drums: float = 0.6
    p_voice: float = 0.5
    p_lead: float = 0.6
    p_bass: float = 0.8
    n_accompaniment: tuple[int, int] = (1, 2)  # min/max accompaniment instruments
    peak: float = 0.9  # mix peak after normalisation (stems get the same gain)


@dataclass
class RenderedSong:
    """A rendered song: ``mix`` and each of ``stems`` are float32 ``(time,)`` at ``sample_rate``;
    ``mix == sum(stems.values())``. ``parts`` maps stem name -> instrument tag."""

    seed: int
    sample_rate: int
    mix: np.ndarray
    stems: dict[str, np.ndarray]
    tags: list[str]
    parts: dict[str, str] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def vocals(self) -> np.ndarray:
        """The vocal-like lead (zeros when the song has none)."""
        return self.stems.get("vocals", np.zeros_like(self.mix))

    @property
    def accompaniment(self) -> np.ndarray:
        return self.mix - self.vocals


_SOUNDFONT: bytes | None = None


def soundfont_bytes() -> bytes:
    """The GM soundfont shipped inside pretty_midi (read once per process)."""
    global _SOUNDFONT
    if _SOUNDFONT is None:
        import pretty_midi

        _SOUNDFONT = (Path(pretty_midi.__file__).parent / "TimGM6mb.sf2").read_bytes()
    return _SOUNDFONT


def _render_part(instrument: object, tempo: float, n_samples: int, sr: int) -> np.ndarray:
    import midirenderer
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.instruments.append(instrument)
    buf = io.BytesIO()
    pm.write(buf)
    wav = midirenderer.render_wave_from(soundfont_bytes(), buf.getvalue())
    data, file_sr = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    mono = torch.from_numpy(data.mean(axis=1))
    out = resample(mono, file_sr, sr).numpy()
    part = np.zeros(n_samples, dtype=np.float32)
    n = min(n_samples, out.shape[0])
    part[:n] = out[:n]
    return part


def _scale_pitch(tonic: int, scale: list[int], degree: int, octave: int) -> int:
    return 12 * (octave + degree // 7) + tonic + scale[degree % 7]


def _compose(rng: np.random.Generator, cfg: SynthConfig) -> tuple[dict, dict[str, object]]:
    """Note lists per part plus the score facts the tags come from."""
    import pretty_midi

    tempo = float(rng.uniform(70, 160))
    beats_per_bar = int(rng.choice([3, 4]))
    minor = bool(rng.random() < 0.5)
    scale = MINOR if minor else MAJOR
    tonic = int(rng.integers(0, 12))
    beat = 60.0 / tempo
    bar = beats_per_bar * beat
    progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    n_bars = int(np.ceil(cfg.duration / bar))
    end_time = cfg.duration

    def instrument(table: dict[str, list[int]], name: str, is_drum: bool = False):
        program = 0 if is_drum else int(rng.choice(table[name]))
        return pretty_midi.Instrument(program=program, is_drum=is_drum, name=name)

    def note(inst, pitch: int, start: float, dur: float, vel: int) -> None:
        if start < end_time:
            inst.notes.append(pretty_midi.Note(velocity=int(np.clip(vel, 1, 127)), pitch=int(pitch),
                                               start=start, end=min(start + dur, end_time)))

    parts: dict[str, tuple[str, object]] = {}
    if rng.random() < cfg.p_bass:  # chord roots and fifths on the beats
        bass = instrument(BASS, "bass")
        for b in range(n_bars):
            root = progression[b % len(progression)]
            for k in range(beats_per_bar):
                deg = root if k % 2 == 0 else root + 4
                note(bass, _scale_pitch(tonic, scale, deg, 2 + (tonic < 4)), b * bar + k * beat,
                     beat * 0.9, 80 + rng.integers(-8, 8))
        parts["bass"] = ("bass", bass)

    # Accompaniment: sustained or arpeggiated triads.
    n_acc = int(rng.integers(cfg.n_accompaniment[0], cfg.n_accompaniment[1] + 1))
    for name in rng.choice(list(ACCOMPANIMENT), size=n_acc, replace=False):
        inst = instrument(ACCOMPANIMENT, str(name))
        arpeggio = bool(rng.random() < 0.5)
        for b in range(n_bars):
            root = progression[b % len(progression)]
            chord = [_scale_pitch(tonic, scale, root + i, 4) for i in (0, 2, 4)]
            if arpeggio:
                for k in range(beats_per_bar * 2):
                    note(inst, chord[k % 3], b * bar + k * beat / 2, beat / 2, 62)
            else:
                for p in chord:
                    note(inst, p, b * bar, bar * 0.95, 58)
        parts[str(name)] = (str(name), inst)

    def melody(inst, octave: int, step_choices: list[float], vel: int) -> None:
        deg = int(rng.integers(0, 7))
        t = 0.0
        while t < end_time:
            dur = float(rng.choice(step_choices)) * beat
            if rng.random() < 0.85:
                note(inst, _scale_pitch(tonic, scale, deg, octave), t, dur * 0.95,
                     vel + rng.integers(-10, 10))
            deg = int(np.clip(deg + rng.choice([-2, -1, -1, 0, 1, 1, 2]), -3, 10))
            t += dur

    if rng.random() < cfg.p_lead:
        name = str(rng.choice(list(LEAD)))
        inst = instrument(LEAD, name)
        melody(inst, 5, [0.5, 0.5, 1.0], 88)
        parts["lead"] = (name, inst)
    if rng.random() < cfg.p_voice:
        inst = instrument(VOICE, "vocals")
        melody(inst, 4, [1.0, 1.0, 2.0], 100)
        parts["vocals"] = ("vocals", inst)
    if rng.random() < cfg.p_drums:
        drums = instrument({}, "drums", is_drum=True)
        for b in range(n_bars):
            for k in range(beats_per_bar * 2):
                t = b * bar + k * beat / 2
                note(drums, 42, t, 0.1, 70)  # closed hi-hat on eighths
                if k == 0:
                    note(drums, 36, t, 0.2, 105)  # kick on the downbeat
                elif k == 4 or (beats_per_bar == 3 and k == 3):
                    note(drums, 38, t, 0.2, 95)  # snare on the back beat
        parts["drums"] = ("drums", drums)

    facts = {"tempo": tempo, "tempo_class": "tempo_slow" if tempo < 90 else
             "tempo_medium" if tempo < 130 else "tempo_fast",
             "minor": minor, "tonic": tonic, "beats_per_bar": beats_per_bar}
    return parts, facts


def render_song(seed: int, config: SynthConfig | None = None) -> RenderedSong:
    """Render one song; the same ``seed`` and config always give the same audio and tags."""
    cfg = config or SynthConfig()
    rng = np.random.default_rng(seed)
    parts, facts = _compose(rng, cfg)
    n = int(round(cfg.duration * cfg.sample_rate))
    stems = {name: _render_part(inst, float(facts["tempo"]), n, cfg.sample_rate)
             for name, (_, inst) in parts.items()}
    mix = np.sum(list(stems.values()), axis=0).astype(np.float32)
    gain = cfg.peak / max(float(np.abs(mix).max()), 1e-6)
    stems = {k: (v * gain).astype(np.float32) for k, v in stems.items()}
    mix = np.sum(list(stems.values()), axis=0).astype(np.float32)

    instruments = sorted({tag for tag, _ in parts.values()})
    tags = [*instruments, str(facts["tempo_class"]), "minor" if facts["minor"] else "major",
            f"meter_{facts['beats_per_bar']}"]
    return RenderedSong(seed=seed, sample_rate=cfg.sample_rate, mix=mix, stems=stems,
                        tags=[t for t in TAG_VOCABULARY if t in tags],
                        parts={k: tag for k, (tag, _) in parts.items()},
                        meta={k: v for k, v in facts.items()})


def _split_for(index: int, n: int, fractions: tuple[float, float, float]) -> str:
    train_end = int(round(fractions[0] * n))
    valid_end = train_end + int(round(fractions[1] * n))
    return "train" if index < train_end else "valid" if index < valid_end else "test"


def _render_and_save(job: tuple[int, int, SynthConfig, str, bool, str]) -> AudioRecord:
    index, song_seed, cfg, out_dir, with_stems, split = job
    out = Path(out_dir)
    song = render_song(song_seed, cfg)
    song_id = f"song_{index:05d}"
    rel = f"audio/{song_id}.wav"
    save_audio(out / rel, song.mix, cfg.sample_rate, subtype="FLOAT")
    stems = {}
    if with_stems:
        for name, audio in song.stems.items():
            stems[name] = f"stems/{song_id}/{name}.wav"
            save_audio(out / stems[name], audio, cfg.sample_rate, subtype="FLOAT")
    return AudioRecord(path=rel, duration=cfg.duration, sample_rate=cfg.sample_rate, split=split,
                       tags=song.tags, stems=stems, group=song_id,
                       meta={"seed": song.seed, **song.meta, "parts": song.parts})


def synth_catalog(out_dir: str | Path, n: int, seed: int = 0, config: SynthConfig | None = None,
                  with_stems: bool = False,
                  splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  progress: bool = True, workers: int | None = None) -> list[AudioRecord]:
    """Render ``n`` songs into ``out_dir`` (``audio/*.wav``, optional ``stems/<id>/*.wav``) and
    write ``manifest.jsonl`` with paths relative to ``out_dir``.

    Song ``i`` uses seed ``seed * 1_000_003 + i``, so catalogs of different sizes share their
    first songs; the output does not depend on ``workers``.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    cfg = config or SynthConfig()
    jobs = [(i, seed * 1_000_003 + i, cfg, str(out_dir), with_stems, _split_for(i, n, splits))
            for i in range(n)]
    workers = workers or min(os.cpu_count() or 1, 8)
    bar = dict(total=n, desc="rendering songs", unit="song", disable=not progress)
    if workers <= 1 or n < 4:
        records = [_render_and_save(j) for j in tqdm(jobs, **bar)]
    else:
        with ProcessPoolExecutor(workers) as pool:
            records = list(tqdm(pool.map(_render_and_save, jobs, chunksize=2), **bar))
    write_manifest(Path(out_dir) / "manifest.jsonl", records)
    return records
