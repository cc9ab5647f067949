"""Codec speed on one thread: encode/decode real-time factors, offline and streaming (20 ms).

    python benchmarks/codec.py [--data-root ../shared/data] [--seconds 10] [--repeats 5]

Rows: ours (SoundStream, C=16 and C=32 at 16 kHz, C=16 at 24 kHz) offline and streaming with
20 ms chunks through the stateful StreamingEncoder/Decoder (compiled stream plans with the fused
numba kernels); C=16 streamed through the same plans with torch ops only (``fused=False``) and
through the modules' own forward_stream (the slower reference paths, for before/after); and the
peer, the ``encodec`` pip package's 24 kHz model built from its own classes with random weights
(no download; the same compute as the released model) at 6 kbps, in the same process. EnCodec
has no cached streaming state, so it is timed offline only (its cheapest mode). RTF = seconds
of audio per second of compute (higher is faster), from wall-clock time and from the thread's
CPU time (less sensitive to other jobs on a shared machine). Prints a markdown table and the
load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from audiofcn.codec import StreamingDecoder, StreamingEncoder, default_model_path
from audiofcn.io import load_audio, resample
from audiofcn.models.soundstream import SoundStream, soundstream_preset


def default_data_root() -> Path:
    env = os.environ.get("AUDIOFCN_DATA_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def speech(root: Path, seconds: float) -> torch.Tensor:
    """Real speech at 16 kHz (speechbrain ASR clips, concatenated); rendered music if absent."""
    files = sorted((root / "speech" / "speechbrain" / "ASR").glob("*.flac"))
    if files:
        x = torch.cat([load_audio(f, sr=16000)[0][0] for f in files])
    else:
        from audiofcn.data.synth import SynthConfig, render_song

        x = torch.from_numpy(render_song(0, SynthConfig(16000, seconds)).mix)
    while x.numel() < seconds * 16000:
        x = torch.cat([x, x])
    return x[: int(seconds * 16000)]


def ours_jobs(model: SoundStream, audio: torch.Tensor, n_q: int, fused: bool | None = None,
              offline: bool = True) -> tuple[float, dict[str, Callable[[], object]]]:
    """(audio seconds, {mode: callable}) for offline and 20 ms streaming encode/decode;
    ``fused``: the streaming classes' kernel choice (None: their default)."""
    model.eval()
    x = audio[None, None]
    dur = audio.numel() / model.config.sample_rate
    chunk = model.config.sample_rate // 50  # 20 ms
    with torch.inference_mode():
        codes = model.encode(x, n_q)

    def enc_stream() -> None:
        enc = StreamingEncoder(model, n_q, fused=fused)
        for i in range(0, x.shape[-1], chunk):
            enc.push(x[..., i:i + chunk])
        enc.flush()

    def dec_stream() -> None:
        dec = StreamingDecoder(model, fused=fused)
        frames_per_chunk = max(1, chunk // model.hop_length)
        for i in range(0, codes.shape[-1], frames_per_chunk):
            dec.push(codes[..., i:i + frames_per_chunk])

    jobs: dict[str, Callable[[], object]] = {"encode_stream": enc_stream,
                                             "decode_stream": dec_stream}
    if offline:
        jobs = {"encode": lambda: model.encode(x, n_q), "decode": lambda: model.decode(codes),
                **jobs}
    return dur, jobs


def module_path_jobs(model: SoundStream, audio: torch.Tensor, n_q: int
                     ) -> tuple[float, dict[str, Callable[[], object]]]:
    """20 ms streaming through the modules' own ``forward_stream`` (the path ``StreamingEncoder``
    / ``StreamingDecoder`` used before :mod:`audiofcn.nn.stream_plan`): the before/after row."""
    model.eval()
    x = audio[None, None]
    chunk = model.config.sample_rate // 50
    with torch.inference_mode():
        codes = model.encode(x, n_q)
    cond = torch.zeros(1, dtype=torch.long)

    def enc_stream() -> None:
        state: dict = {}
        for i in range(0, x.shape[-1], chunk):
            h = model.film(model.encoder.forward_stream(x[..., i:i + chunk], state), cond)
            z = model.to_embedding.forward_stream(h, state)
            if z.shape[-1]:
                model.quantizer.encode(z, n_q)

    def dec_stream() -> None:
        state: dict = {}
        frames_per_chunk = max(1, chunk // model.hop_length)
        for i in range(0, codes.shape[-1], frames_per_chunk):
            model.decoder.forward_stream(model.quantizer.decode(codes[..., i:i + frames_per_chunk]),
                                         state)

    return audio.numel() / model.config.sample_rate, {"encode_stream": enc_stream,
                                                      "decode_stream": dec_stream}


def encodec_jobs(audio16: torch.Tensor) -> tuple[float, dict[str, Callable[[], object]]]:
    from encodec import EncodecModel

    model = EncodecModel.encodec_model_24khz(pretrained=False)  # random weights, no download
    model.set_target_bandwidth(6.0)
    model.eval()
    x = resample(audio16[None], 16000, 24000)[None]  # (1, 1, T)
    with torch.inference_mode():
        frames = model.encode(x)
    return x.shape[-1] / 24000, {"encode": lambda: model.encode(x),
                                 "decode": lambda: model.decode(frames)}


def run_interleaved(rows: list[tuple[str, int, float, dict[str, Callable[[], object]]]],
                    repeats: int) -> list[dict[str, tuple[float, float]]]:
    """Time every (model, mode) once per round, round-robin, so that load changes on a shared
    machine hit all rows alike; (wall RTF, CPU RTF) from the median round."""
    times: list[dict[str, list[tuple[float, float]]]] = [{k: [] for k in jobs}
                                                         for _, _, _, jobs in rows]
    with torch.inference_mode():
        for _, _, _, jobs in rows:  # warm-up (allocations, lazy init)
            for fn in jobs.values():
                fn()
        for _ in range(repeats):
            for (_, _, _, jobs), t in zip(rows, times, strict=True):
                for k, fn in jobs.items():
                    t0, c0 = time.perf_counter(), time.thread_time()
                    fn()
                    t[k].append((time.perf_counter() - t0, time.thread_time() - c0))
    return [{k: (dur / statistics.median(w for w, _ in v), dur / statistics.median(c for _, c in v))
             for k, v in t.items()}
            for (_, _, dur, _), t in zip(rows, times, strict=True)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", type=Path, default=default_data_root())
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    # The fused stream plans multiply through numpy's BLAS; they keep it on the calling thread
    # themselves, and this keeps any other numpy product there too.
    threadpool_limits(1, user_api="blas")
    audio = speech(args.data_root, args.seconds)
    shipped = default_model_path()
    torch.manual_seed(0)
    c16 = SoundStream.from_pretrained(shipped) if shipped.exists() else \
        SoundStream(soundstream_preset("16k-c16"))
    c32 = SoundStream(soundstream_preset("16k-c32"))
    c16_24 = SoundStream(soundstream_preset("24k-c16"))
    audio24 = resample(audio[None], 16000, 24000)[0]
    rows = [("ours 16 kHz C=16, 6 kbps" + (" (shipped)" if shipped.exists() else ""),
             c16.num_parameters(), *ours_jobs(c16, audio, 12)),
            ("ours 16 kHz C=32, 6 kbps (random weights)", c32.num_parameters(),
             *ours_jobs(c32, audio, 12)),
            ("ours 24 kHz C=16, 6 kbps (random weights)", c16_24.num_parameters(),
             *ours_jobs(c16_24, audio24, 8)),
            ("ours 16 kHz C=16, stream plan with torch ops only (`fused=False`: the path before "
             "`nn.fused_kernels`)", c16.num_parameters(),
             *ours_jobs(c16, audio, 12, fused=False, offline=False)),
            ("ours 16 kHz C=16, module-by-module `forward_stream` (the path before "
             "`nn.stream_plan`)", c16.num_parameters(), *module_path_jobs(c16, audio, 12))]
    try:
        import encodec
        from encodec import EncodecModel

        params = sum(p.numel() for p in EncodecModel.encodec_model_24khz(
            pretrained=False).parameters())
        rows.append((f"EnCodec 24 kHz, 6 kbps (encodec {encodec.__version__}, random weights)",
                     params, *encodec_jobs(audio)))
    except ImportError:
        print("encodec not installed: peer row skipped (pip install encodec)")
    load0 = os.getloadavg()[0]
    results = run_interleaved(rows, args.repeats)
    print(f"\n{args.seconds:g} s of speech, 1 thread, median of {args.repeats} interleaved rounds; "
          "RTF = audio seconds per compute second (higher is faster), wall / thread CPU time; "
          f"1-min load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} CPUs)\n")
    print("| model | params | encode RTF | decode RTF | stream encode RTF (20 ms) | "
          "stream decode RTF (20 ms) |")
    print("|---|---|---|---|---|---|")

    def fmt(d: dict[str, tuple[float, float]], k: str) -> str:
        if k in d:
            return f"{d[k][0]:.1f}x / {d[k][1]:.1f}x"
        return "n/a (no streaming state)" if k.endswith("stream") else "same as above"

    for (name, params, _, _), d in zip(rows, results, strict=True):
        print(f"| {name} | {params / 1e6:.2f} M | {fmt(d, 'encode')} | {fmt(d, 'decode')} | "
              f"{fmt(d, 'encode_stream')} | {fmt(d, 'decode_stream')} |")
    print("\n" + exactness(c16, audio, 12))
    return 0


def exactness(model: SoundStream, audio: torch.Tensor, n_q: int) -> str:
    """Streaming (20 ms chunks, default kernels) vs offline on the timed clip."""
    x, chunk = audio[None, None], model.config.sample_rate // 50
    with torch.inference_mode():
        codes = model.encode(x, n_q)
        enc, dec = StreamingEncoder(model, n_q), StreamingDecoder(model)
        streamed = torch.cat([enc.push(x[..., i:i + chunk]) for i in range(0, x.shape[-1], chunk)]
                             + [enc.flush()], -1)
        y = torch.cat([dec.push(codes[..., i:i + 1]) for i in range(codes.shape[-1])], -1)
        diff = (y - model.decode(codes)).abs().max().item()
    return (f"C=16 streaming vs offline: encoder codes identical: {torch.equal(streamed, codes)}; "
            f"decoder max abs difference {diff:.1e}")


if __name__ == "__main__":
    raise SystemExit(main())
