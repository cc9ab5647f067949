"""Tagger speed: inference real-time factor, training throughput, parameters, MACs per second.

  python benchmarks/tagging.py [--quick] [--shipped-only]

One thread (``torch.set_num_threads(1)``), CPU; times are CPU seconds of this process (the
machine may be shared). For each model (the paper-size architectures
and the small recipe/shipped configs) on batches of its own input length:
  * inference RTF: seconds of audio tagged per second of compute (forward, eval mode,
    ``torch.inference_mode``), higher is better;
  * training: audio seconds per second through forward + backward + AdamW step;
  * MACs per second of audio (``torch.utils.flop_counter``, FLOPs / 2), parameters.
Also the end-to-end ``audiofcn tag`` path (file decode + chunking + model) with the shipped
tagger on rendered songs, which is what the ">= 100x real time" target refers to: run
``--cli-repeats`` times, each with wall time, process CPU time, the time spent waiting for a
CPU (run queue) and the load average, since wall time on a shared machine measures the load.
No peer tagger is installed here; the log-mel frontend alone is given as a reference row.

``--long-minutes 60`` also tags one long file (44.1 kHz stereo FLAC, built from the real music
under ``--data-root``'s ``librosa/`` folder, looped; synthetic tones without it) with
``audiofcn tag`` in a child process and reports its peak resident memory (``ru_maxrss``), next
to a child that decodes the whole file first (``load_audio`` + ``predict_track``), the path
``audiofcn tag`` took before it read files block by block.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def macs_per_call(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / 2


def timed(fn, min_time: float, max_iter: int) -> float:
    """Median CPU seconds (this process, one thread) per call over repeated calls.

    CPU time rather than wall time: on a shared machine the wall clock measures the other
    jobs; with one thread, CPU time is the compute the call needs.
    """
    fn()  # warm-up
    times: list[float] = []
    start = time.process_time()
    while len(times) < 2 or (time.process_time() - start < min_time and len(times) < max_iter):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return sorted(times)[len(times) // 2]


def bench_model(name: str, model: torch.nn.Module, batch: int, quick: bool,
                train: bool = True) -> dict[str, object]:
    cfg = model.config
    x = torch.randn(batch, cfg.input_length) * 0.1
    seconds = batch * cfg.input_length / cfg.sample_rate
    model.eval()
    macs = macs_per_call(model, x[:1]) / (cfg.input_length / cfg.sample_rate)

    def infer() -> None:
        with torch.inference_mode():
            model(x)

    t_inf = timed(infer, 0.5 if quick else 2.0, 3 if quick else 10)
    row = {"model": name, "params": model.num_parameters(), "gmacs_per_s": macs / 1e9,
           "input_s": cfg.input_length / cfg.sample_rate, "rtf_infer": seconds / t_inf}
    if train:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        target = torch.zeros(batch, len(cfg.labels))

        def step() -> None:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()

        row["train_audio_s_per_s"] = seconds / timed(step, 0.5 if quick else 2.0, 2 if quick
                                                      else 5)
    return row


def architectures(quick: bool) -> list[tuple[str, torch.nn.Module, int]]:
    from audiofcn.models.attention_tagger import SelfAttentionTagger, SelfAttentionTaggerConfig
    from audiofcn.models.fcn import FCN, FCNConfig
    from audiofcn.models.rawwave import RawWaveCNN, RawWaveCNNConfig
    from audiofcn.models.samplecnn import SampleCNN, SampleCNNConfig
    from audiofcn.tagging import load_tagger

    rows = [("CRNN MSD-50, shipped default (29.1 s, 12 kHz)", load_tagger("msd50_crnn"), 1),
            ("FCN MSD-50, shipped (29.1 s, 12 kHz)", load_tagger("msd50_fcn"), 1),
            ("FCN-4 (29.1 s, 12 kHz)", FCN(FCNConfig.variant("fcn4")), 1),
            ("FCN-5-small (reimpl., 64-128-128-128-64)", FCN(FCNConfig.variant("fcn5-small")),
             2),
            ("SampleCNN 3^9 (59,049 samples)", SampleCNN(SampleCNNConfig()), 2),
            ("SampleCNN 3^9 + SE (α=16)", SampleCNN(SampleCNNConfig(block="se")), 2),
            ("Self-attention (15 s, 16 kHz)", SelfAttentionTagger(SelfAttentionTaggerConfig()),
             2)]
    for v in ("m3", "m5", "m11", "m18", "m34res"):
        rows.append((f"{v.upper()} (4 s, 8 kHz)", RawWaveCNN(RawWaveCNNConfig.variant(v)), 4))
    if quick:
        rows = [r for r in rows if not r[0].startswith(("FCN-4", "M34"))]
    return rows


def recipe_models() -> list[tuple[str, torch.nn.Module, int]]:
    sys.path.insert(0, str(REPO / "recipes" / "tagging"))
    from common import build_model, load_config

    out = []
    for name in ("synth_fcn", "synth_samplecnn", "synth_samplecnn_se", "synth_attention",
                 "fsdd_m3", "fsdd_m18"):
        cfg = load_config(name)
        labels = [f"t{i}" for i in range(19 if name.startswith("synth") else 5)]
        out.append((f"recipe {name}", build_model(cfg["model"], labels, True), 8))
    return out


def _runqueue_wait_s() -> float:
    """Seconds this process's live threads spent runnable but waiting for a CPU (Linux
    ``/proc/self/task/*/schedstat``, second field); NaN where unavailable."""
    total = 0.0
    try:
        for f in Path("/proc/self/task").glob("*/schedstat"):
            total += int(f.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")
    return total


def _load() -> str:
    """``os.getloadavg()`` (1, 5, 15 min) and the CPU count, for the report."""
    import os

    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load n/a"
    return f"load {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


def bench_cli(n_tracks: int, folder: str | None = None,
              repeats: int = 3) -> dict[str, object] | None:
    """``audiofcn tag`` on a folder of rendered songs with the shipped default tagger: a fresh
    catalog of ``n_tracks`` songs, or the first ``n_tracks`` files of ``folder``.

    Runs the CLI ``repeats`` times (the first includes cold caches); for each run it records
    wall time, process CPU time, the time the process waited for a CPU (run queue) and the
    load average, so a wall/CPU gap can be attributed to the other jobs on the machine."""
    import shutil

    from audiofcn.cli.tag import DEFAULT_TAGGER, shipped_taggers

    if DEFAULT_TAGGER not in shipped_taggers():
        return None
    from audiofcn.cli.main import main
    from audiofcn.data.synth import SynthConfig, synth_catalog
    from audiofcn.io import audio_info
    from audiofcn.io.files import find_audio_files

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        audio_dir = Path(tmp) / "audio"
        if folder:
            audio_dir.mkdir()
            for f in find_audio_files([folder])[0][:n_tracks]:
                shutil.copy(f, audio_dir / f.name)
        else:
            synth_catalog(tmp, n_tracks, seed=123, config=SynthConfig(sample_rate=16000,
                                                                       duration=8.0),
                          progress=False, workers=1)
        files = find_audio_files([audio_dir])[0]
        audio_s = sum(audio_info(f).duration for f in files)
        n_tracks = len(files)
        for _ in range(max(1, repeats)):
            load_before = _load()
            q = _runqueue_wait_s()
            t, c, th = time.perf_counter(), time.process_time(), time.thread_time()
            code = main(["tag", str(audio_dir), "--out", str(Path(tmp) / "t.csv"),
                         "--no-progress", "--threads", "1"])
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            thread = time.thread_time() - th
            runs.append({"seconds": dt, "cpu_seconds": cpu, "thread_cpu_seconds": thread,
                         "rtf_thread": audio_s / thread,
                         "runqueue_wait_s": _runqueue_wait_s() - q, "exit": code,
                         "rtf": audio_s / dt, "rtf_cpu": audio_s / cpu,
                         "load_before": load_before, "load_after": _load()})
    best = min(runs, key=lambda r: r["seconds"])
    return {"tracks": n_tracks, "audio_s": audio_s, "runs": runs, "best": best,
            "source": f"files of {folder}" if folder else "rendered",
            "exit": max(r["exit"] for r in runs)}


def print_cli(cli: dict[str, object]) -> None:
    from audiofcn.cli.tag import DEFAULT_TAGGER

    print(f"\n`audiofcn tag` (shipped default tagger {DEFAULT_TAGGER}, one thread) on "
          f"{cli['tracks']} {cli['source']} tracks ({cli['audio_s']:.0f} s of audio), "
          f"exit {cli['exit']}:\n")
    print("| run | thread CPU s | × real time (thread CPU) | process CPU s | wall s | "
          "× real time (wall) | waiting for a CPU s | load before → after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for i, r in enumerate(cli["runs"], 1):  # type: ignore[arg-type]
        print(f"| {i} | {r['thread_cpu_seconds']:.2f} | **{r['rtf_thread']:.0f}** | "
              f"{r['cpu_seconds']:.2f} | {r['seconds']:.1f} | {r['rtf']:.0f} | "
              f"{r['runqueue_wait_s']:.1f} | "
              f"{r['load_before']} → {r['load_after'].split(' on ')[0][5:]} |")


def bench_stages(folder: str, n_tracks: int, models: list[str]) -> list[dict[str, object]]:
    """Where the time of tagging short files goes (thread CPU seconds, one thread): reading +
    mixing + resampling the first ``n_tracks`` files of ``folder``, then each model on the
    resulting zero-padded chunks, plain (the whole padded chunk) and with ``lengths`` (the
    padding's frames skipped, :mod:`audiofcn.models.padded`), and the largest difference
    between the two outputs."""
    from audiofcn.io.files import find_audio_files
    from audiofcn.io.stream import read_mono_blocks
    from audiofcn.tagging import chunk_audio, chunk_lengths, load_tagger

    files = find_audio_files([folder])[0][:n_tracks]
    rows: list[dict[str, object]] = []
    for name in models:
        m = load_tagger(name)
        sr, length = m.config.sample_rate, m.config.input_length
        t = time.thread_time()
        clips = [torch.cat(list(read_mono_blocks(f, sr, 60.0))) for f in files]
        t_read = time.thread_time() - t
        audio_s = sum(c.shape[0] for c in clips) / sr
        chunks = [chunk_audio(c, length) for c in clips]
        lengths = [chunk_lengths(c.shape[0], length) for c in clips]
        with torch.inference_mode():
            m(chunks[0], lengths=lengths[0])  # warm-up
            t = time.thread_time()
            fast = [m(x, lengths=n) for x, n in zip(chunks, lengths, strict=True)]
            t_fast = time.thread_time() - t
            t = time.thread_time()
            for x in chunks:
                m.frontend(x)
            t_fe = time.thread_time() - t
            t = time.thread_time()
            plain = [m(x) for x in chunks]
            t_plain = time.thread_time() - t
        diff = max(float((torch.sigmoid(a) - torch.sigmoid(b)).abs().max())
                   for a, b in zip(fast, plain, strict=True))
        rows.append({"model": name, "tracks": len(files), "audio_s": audio_s,
                     "read_resample_s": t_read, "frontend_padded_s": t_fe,
                     "model_plain_s": t_plain, "model_lengths_s": t_fast,
                     "max_abs_prob_diff": diff})
    return rows


def print_stages(rows: list[dict[str, object]]) -> None:
    print("\nShort files, stage by stage (thread CPU s, one thread):\n")
    print("| model | tracks (audio s) | read + mix + resample | log-mel of the padded chunks | "
          "model, plain padded chunks | model, padding skipped | speed-up | "
          "max abs Δp |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['tracks']} ({r['audio_s']:.0f}) | "
              f"{r['read_resample_s']:.2f} | {r['frontend_padded_s']:.2f} | "
              f"{r['model_plain_s']:.2f} ({r['audio_s'] / r['model_plain_s']:.0f}×) | "  # type: ignore[operator]
              f"{r['model_lengths_s']:.2f} ({r['audio_s'] / r['model_lengths_s']:.0f}×) | "  # type: ignore[operator]
              f"{r['model_plain_s'] / r['model_lengths_s']:.1f}× | "  # type: ignore[operator]
              f"{r['max_abs_prob_diff']:.1e} |")


def _write_long_file(path: Path, minutes: float, data_root: str | None) -> str:
    """A ``minutes``-long 44.1 kHz stereo FLAC, written block by block."""
    import numpy as np
    import soundfile as sf
    import soxr

    sr = 44100
    songs = []
    if data_root:
        for f in sorted((Path(data_root) / "librosa").glob("*.ogg")):
            txt = f.with_suffix(".txt")
            if txt.exists() and "librispeech" not in txt.read_text(errors="ignore").lower():
                x, fsr = sf.read(str(f), dtype="float32", always_2d=True)
                songs.append(soxr.resample(x.mean(1), fsr, sr).astype(np.float32))
    source = f"{len(songs)} clips of {data_root}/librosa, looped" if songs else "tones"
    if not songs:
        t = np.arange(sr * 30) / sr
        songs = [(0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.1 * np.sin(t)))).astype(np.float32)]
    loop = np.concatenate(songs)
    total, block = int(minutes * 60 * sr), sr * 60
    with sf.SoundFile(str(path), "w", sr, 2, format="FLAC") as f:
        pos = 0
        while pos < total:
            n = min(block, total - pos)
            idx = (np.arange(pos, pos + n) % loop.shape[0])
            mono = loop[idx]
            f.write(np.stack([mono, 0.8 * mono], axis=1))
            pos += n
    return source


def _child(code: str) -> dict[str, float]:
    """Run ``code`` in a fresh Python; its wall/CPU seconds and peak RSS (MB)."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: run the smaller one first.
    return {"wall_s": wall, "cpu_s": (after.ru_utime + after.ru_stime) -
            (before.ru_utime + before.ru_stime), "peak_rss_mb": after.ru_maxrss / 1024,
            "stdout": proc.stdout.strip()[-200:]}


def bench_long(minutes: float, data_root: str | None, model: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.flac"
        source = _write_long_file(path, minutes, data_root)
        out = Path(tmp) / "t.json"
        tag = _child("import sys; from audiofcn.cli.main import main; sys.exit(main(["
                     f"'tag', {str(path)!r}, '--model', {model!r}, '--out', {str(out)!r}, "
                     "'--no-progress', '--threads', '1']))")
        whole = _child("import torch; torch.set_num_threads(1)\n"
                       "from audiofcn.io import load_audio\n"
                       "from audiofcn.tagging import load_tagger, predict_track\n"
                       f"m = load_tagger({model!r})\n"
                       f"a, _ = load_audio({str(path)!r}, sr=m.config.sample_rate)\n"
                       "print(float(predict_track(m, a[0]).max()))")
        import json

        track = json.loads(out.read_text())["tracks"][0]
    return {"minutes": minutes, "source": source, "tag": tag, "whole_file": whole,
            "top": track["top"][:3]}


def print_long(r: dict[str, object]) -> None:
    tag, whole = r["tag"], r["whole_file"]
    audio_s = 60 * float(r["minutes"])  # type: ignore[arg-type]
    print(f"\nOne {r['minutes']}-minute 44.1 kHz stereo FLAC ({r['source']}), one thread:\n")
    print("| path | peak memory MB | wall s | × real time (wall) | CPU s |")
    print("|---|---:|---:|---:|---:|")
    for name, x in (("`audiofcn tag` (block-wise reading, 60 s blocks)", tag),
                    ("decode whole file, then tag (`load_audio` + `predict_track`)", whole)):
        print(f"| {name} | {x['peak_rss_mb']:,.0f} | {x['wall_s']:.1f} | "  # type: ignore
              f"{audio_s / x['wall_s']:.0f} | {x['cpu_s']:.1f} |")  # type: ignore[index]
    print(f"\ntop tags: {r['top']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer repeats, skip the largest")
    p.add_argument("--cli-tracks", type=int, default=100)
    p.add_argument("--cli-folder", help="use the first --cli-tracks files of this folder of "
                   "rendered songs instead of rendering new ones")
    p.add_argument("--cli-repeats", type=int, default=3)
    p.add_argument("--skip-cli", action="store_true")
    p.add_argument("--cli-only", action="store_true")
    p.add_argument("--shipped-only", action="store_true",
                   help="model rows for the shipped MSD-50 taggers only (no training rows)")
    p.add_argument("--long-minutes", type=float, default=0.0,
                   help="also tag one file this long and measure peak memory (e.g. 60)")
    p.add_argument("--data-root", help="shared data folder (real music for --long-minutes)")
    p.add_argument("--stages", help="comma-separated taggers: time the stages of tagging the "
                   "--cli-folder files (read/resample, model on padded chunks plain vs "
                   "padding skipped)")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    from audiofcn.frontend import LogMelFrontend
    from audiofcn.models.fcn import choi_frontend

    rows = []
    models = [] if args.cli_only else [*architectures(args.quick), *recipe_models()]
    if args.shipped_only:
        models = [m for m in architectures(True) if "MSD-50" in m[0]]
    for name, model, batch in models:
        rows.append(bench_model(name, model, batch, args.quick, train=not args.shipped_only))
        print(f"  measured {name}", file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, 1 thread, CPU time\n")
    if rows:
        fe = LogMelFrontend(choi_frontend())
        x = torch.randn(4, 349_440)
        t_fe = timed(lambda: fe(x), 0.5, 10)

        print("| model | params | input (s) | GMACs / s audio | inference × real time | "
              "training audio-s / s |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['model']} | {r['params']:,} | {r['input_s']:.2f} | "
                  f"{r['gmacs_per_s']:.3f} | {r['rtf_infer']:,.0f} | "
                  f"{r.get('train_audio_s_per_s', float('nan')):,.1f} |")
        print(f"| reference: log-mel frontend only (12 kHz, 96 bins) | 0 | 29.12 | – | "
              f"{4 * 29.12 / t_fe:,.0f} | – |")
    if args.stages:
        if not args.cli_folder:
            raise SystemExit("--stages needs --cli-folder")
        print_stages(bench_stages(args.cli_folder, args.cli_tracks, args.stages.split(",")))
    if not args.skip_cli:
        cli = bench_cli(args.cli_tracks, args.cli_folder, args.cli_repeats)
        if cli is None:
            print("\n(no shipped default tagger: `audiofcn tag` row skipped)")
        else:
            print_cli(cli)
    if args.long_minutes > 0:
        from audiofcn.cli.tag import DEFAULT_TAGGER

        print_long(bench_long(args.long_minutes, args.data_root, DEFAULT_TAGGER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
