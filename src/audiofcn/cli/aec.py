"""``audiofcn aec --mic mic.wav --ref far.wav -o out.wav``: cancel echo and noise.

The microphone recording and the far-end reference (what the loudspeaker played) must have
the same sample rate and the same length (they come from one call, sample-aligned); anything
else is refused with a one-line error rather than silently padded. Audio at another rate than
the model's (16 kHz) is resampled in and out; multichannel files are downmixed. ``--stream``
runs the frame-by-frame API (10 ms hops, the way a call would) instead of the whole file;
the result is the same, time-aligned.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiofcn.cli.checks import positive_float


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("aec", help="cancel acoustic echo and noise given the far-end reference",
                       description=__doc__)
    p.add_argument("--mic", type=Path, required=True, help="microphone recording")
    p.add_argument("--ref", type=Path, required=True, help="far-end reference (loudspeaker)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output audio file")
    p.add_argument("--model", type=Path, default=None,
                   help="echo canceller checkpoint, or a shipped canceller's name: "
                        "aec_default (the default: Kalman linear stage + residual network) "
                        "or aec_e2e (the earlier end-to-end network)")
    p.add_argument("--stream", action="store_true",
                   help="process in 10 ms frames through the streaming API")
    p.add_argument("--chunk-seconds", type=positive_float, default=10.0,
                   help="seconds read, processed and written at a time (bounds memory; the "
                        "output does not depend on it); default 10")
    p.set_defaults(func=run)


SHIPPED_CANCELLERS = ("aec_default", "aec_e2e")


def default_model_path(name: str = "aec_default") -> Path:
    return Path(__file__).resolve().parents[1] / "pretrained" / f"{name}.safetensors"


def resolve_canceller(source: str | Path) -> Path:
    """A shipped canceller's name (:data:`SHIPPED_CANCELLERS`) -> its file in the package;
    anything else is a path (an existing file of that name wins)."""
    if str(source) in SHIPPED_CANCELLERS and not Path(source).exists():
        return default_model_path(str(source))
    return Path(source)


def load_canceller(path: Path | None = None):
    """The echo canceller at ``path`` (default: the shipped one), in eval mode: an
    ``EchoCanceller`` or, for a hybrid checkpoint (linear stage + network), the
    ``audiofcn.aec.HybridCanceller`` around it (the same ``enhance`` / ``process`` /
    ``open_stream`` / ``reset_stream`` interface)."""
    from audiofcn.cli.main import UserError
    from audiofcn.models import load_model
    from audiofcn.models.base import CheckpointError
    from audiofcn.models.echo import EchoCanceller

    p = resolve_canceller(path) if path is not None else default_model_path()
    if not p.exists():
        raise CheckpointError(f"{p}: echo canceller checkpoint not found")
    model = load_model(p)
    if not isinstance(model, EchoCanceller):
        raise UserError(f"{p}: is a {model.model_name!r} checkpoint, not an echo canceller")
    if model.config.hybrid:
        from audiofcn.aec.hybrid import HybridCanceller

        return HybridCanceller(model.eval())
    return model.eval()


def cancel(model, mic, ref, stream: bool = False):
    """``(time,)`` tensors at the model rate -> ``(time,)`` near-end estimate."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        if not stream:
            return model.enhance(mic[None], ref[None])[0]
        hop, delay, n = model.hop_length, model.output_delay, mic.shape[-1]
        total = n + delay + (-(n + delay)) % hop  # feed zeros to flush the delay line
        m, r = F.pad(mic, (0, total - n)), F.pad(ref, (0, total - n))
        s = model.open_stream()
        out = torch.cat([s.process(m[i:i + hop], r[i:i + hop]) for i in range(0, total, hop)])
        return out[delay:delay + n]


class _OfflineChunks:
    """The offline network over a stream: streaming STFT -> ``forward_stream`` (convolution
    caches carried) -> streaming inverse STFT. Equals ``model.enhance`` on the whole signal."""

    def __init__(self, model) -> None:
        from audiofcn.frontend.streaming import StreamingSTFT
        from audiofcn.frontend.streaming_istft import StreamingISTFT

        self.model, self.state = model, {}
        cfg = model.config.stft
        self.stft, self.istft = StreamingSTFT(cfg), StreamingISTFT(cfg)
        self.n = 0

    def _frames(self, spec):
        if spec.shape[-1] == 0:
            return spec.real.new_zeros(0)
        near = self.model.forward_stream(spec[0:1], spec[1:2], self.state)["near"]
        return self.istft.push(near)[0]

    def push(self, mic, ref):
        self.n += mic.shape[-1]
        import torch

        return self._frames(self.stft.push(torch.stack([mic, ref])))

    def finish(self):
        import torch

        last = self._frames(self.stft.flush())
        return torch.cat([last, self.istft.flush(self.n)[0]])


class _HopStream:
    """The 10 ms streaming API over a stream of any chunk sizes: whole hops go to
    ``EchoStream.process``; the output delay is dropped and flushed with zeros at the end, as
    :func:`cancel` does on a whole file. In total, as many samples out as in."""

    def __init__(self, model) -> None:
        import torch

        self.s, self.hop, self.delay = model.open_stream(), model.hop_length, model.output_delay
        self.rest = torch.zeros(2, 0)
        self.n = self.dropped = self.emitted = 0

    def _run(self, both):
        import torch

        both = torch.cat([self.rest, both], -1)
        k = both.shape[-1] // self.hop * self.hop
        self.rest = both[:, k:]
        out = self.s.process(both[0, :k], both[1, :k]) if k else both.new_zeros(0)
        drop = min(self.delay - self.dropped, out.shape[-1])
        self.dropped += drop
        out = out[drop:][: self.n - self.emitted]
        self.emitted += out.shape[-1]
        return out

    def push(self, mic, ref):
        import torch

        self.n += mic.shape[-1]
        return self._run(torch.stack([mic, ref]))

    def finish(self):
        import torch

        return self._run(torch.zeros(2, self.delay + (-(self.n + self.delay)) % self.hop))


def cancel_file(model, mic_path: Path, ref_path: Path, out_path: Path, *, stream: bool = False,
                chunk_seconds: float = 10.0) -> tuple[int, int, float, float]:
    """Cancel echo in ``mic_path`` given ``ref_path`` chunk by chunk and write ``out_path``
    (mono, the files' rate and length) incrementally and atomically. Memory is bounded by the
    chunk, not by the file.

    Returns ``(frames, sample_rate, mic_rms, out_rms)``.
    """
    import math

    import numpy as np
    import torch

    from audiofcn.io import audio_info
    from audiofcn.io.stream import AudioWriter, StreamResampler, read_blocks

    mi = audio_info(mic_path)
    file_sr, sr, total = mi.sample_rate, model.config.sample_rate, mi.frames
    block = max(1, int(chunk_seconds * file_sr))
    _, mic_blocks = read_blocks(mic_path, block_frames=block)
    _, ref_blocks = read_blocks(ref_path, block_frames=block)
    to_model = [StreamResampler(file_sr, sr, 1) for _ in range(2)]
    back = StreamResampler(sr, file_sr, 1)
    # a hybrid canceller's linear stage runs in hops: its offline output is the streaming one
    hybrid = model.config.hybrid
    proc = _HopStream(model) if stream or hybrid else _OfflineChunks(model)
    mic_energy = out_energy = 0.0
    n_model = 0
    subtype = "FLOAT" if out_path.suffix.lower() == ".wav" else None
    with torch.inference_mode(), AudioWriter(out_path, file_sr, 1, subtype) as w:
        def emit(y: np.ndarray) -> None:
            nonlocal out_energy
            y = y[:, : total - w.frames]
            if y.shape[-1]:
                out_energy += float(np.square(y, dtype=np.float64).sum())
                w.write(y)

        def model_rate(m: np.ndarray, r: np.ndarray) -> None:
            nonlocal mic_energy, n_model
            n = min(m.shape[-1], r.shape[-1])  # the two streams give equal counts
            mic_energy += float(np.square(m[0, :n], dtype=np.float64).sum())
            n_model += n
            out = proc.push(torch.from_numpy(m[0, :n]), torch.from_numpy(r[0, :n]))
            emit(back.push(out.numpy()[None]))

        for bm, br in zip(mic_blocks, ref_blocks, strict=True):
            m, r = bm.mean(0, keepdims=True), br.mean(0, keepdims=True)
            model_rate(to_model[0].push(m), to_model[1].push(r))
        model_rate(to_model[0].flush(), to_model[1].flush())
        short = -(-total * sr // file_sr) - n_model  # resample() rounds up with zeros
        if short > 0:
            model_rate(np.zeros((1, short), np.float32), np.zeros((1, short), np.float32))
        emit(back.push(proc.finish().numpy()[None], last=True))
        if w.frames < total:  # resampling rounds; pad the last sample(s) as the offline path
            emit(np.zeros((1, total - w.frames), np.float32))
    return total, file_sr, math.sqrt(mic_energy / max(n_model, 1)), \
        math.sqrt(out_energy / max(total, 1))


def run(args: argparse.Namespace) -> int:
    import math

    from audiofcn.cli.checks import prepare_output, refuse_overwriting_inputs
    from audiofcn.cli.main import UserError
    from audiofcn.io import audio_info

    refuse_overwriting_inputs([args.out], [args.mic, args.ref])
    prepare_output(args.out)
    mi, ri = audio_info(args.mic), audio_info(args.ref)  # AudioError names a bad file
    if mi.sample_rate != ri.sample_rate:
        raise UserError(f"{args.ref}: sample rate {ri.sample_rate} Hz differs from the "
                        f"microphone's {mi.sample_rate} Hz ({args.mic}); resample one first")
    if mi.frames != ri.frames:
        raise UserError(f"{args.ref}: {ri.frames} samples but the microphone ({args.mic}) has "
                        f"{mi.frames}; mic and reference must be the same sample-aligned length")
    model = load_canceller(args.model)
    if args.stream:
        import torch

        # 10 ms hops are hundreds of tiny kernels: worker threads only add hand-off and spin
        # time (10x slower on a busy machine), so stream on one thread, as a call would.
        torch.set_num_threads(1)
    frames, file_sr, mic_rms, out_rms = cancel_file(
        model, args.mic, args.ref, args.out, stream=args.stream,
        chunk_seconds=args.chunk_seconds)
    change = 20 * math.log10(max(mic_rms, 1e-9) / max(out_rms, 1e-9))
    print(f"{args.out}: {frames / file_sr:.2f} s at {file_sr} Hz, level reduced by "
          f"{change:.1f} dB, algorithmic latency {model.algorithmic_latency_ms:.0f} ms")
    return 0


def aec_step(out: Path, catalog: Path) -> str:
    """Simulate a call from the demo catalog and clean it with the shipped model: 2 s of
    far-end single talk (another song through a synthetic room, clipped loudspeaker), then
    double talk with a song's lead line as the near-end talker. Reports ERLE on the far-end
    part and SI-SDR of the near-end before/after on the double-talk part. (The shipped model
    was trained on speech; rendered music is a harder, out-of-domain near-end.)"""
    import numpy as np
    import torch

    from audiofcn.aec.metrics import erle, si_sdr
    from audiofcn.aec.simulation import simulate_echo
    from audiofcn.io import load_audio, read_manifest, save_audio

    model = load_canceller()
    sr = model.config.sample_rate
    recs = read_manifest(catalog / "manifest.jsonl")
    near_rec = next((r for r in recs if "vocals" in r.stems), recs[0])
    far_rec = next(r for r in recs if r.path != near_rec.path)
    near_path = catalog / near_rec.stems.get("vocals", near_rec.path)
    near = load_audio(near_path, sr=sr)[0][0].numpy()
    far = load_audio(far_rec.resolve(catalog), sr=sr)[0][0].numpy()
    n = min(len(near), len(far), 6 * sr)
    single = 2 * sr  # far-end single talk first
    near = np.concatenate([np.zeros(single, np.float32), near[: n - single]])
    rng = np.random.default_rng(0)
    t = np.arange(int(0.3 * sr))
    rir = (0.3 * rng.standard_normal(len(t)) * np.exp(-t / (0.04 * sr))).astype(np.float32)
    rir[:40] = 0.0  # 2.5 ms from loudspeaker to microphone
    rir[40] = 1.0
    ex = simulate_echo(near, far[:n], rng.standard_normal(n).astype(np.float32), [rir],
                       ser_db=0.0, snr_db=25.0, nonlinearity="clip", scenario="double_talk")
    clean = cancel(model, torch.from_numpy(ex.mic), torch.from_numpy(ex.ref)).numpy()
    folder = out / "aec"
    folder.mkdir(parents=True, exist_ok=True)
    for name, sig in (("mic", ex.mic), ("ref", ex.ref), ("near", ex.near), ("clean", clean)):
        save_audio(folder / f"{name}.wav", sig[None], sr)
    fe = erle(ex.mic[:single], clean[:single])
    before, after = si_sdr(ex.near[single:], ex.mic[single:]), si_sdr(ex.near[single:],
                                                                       clean[single:])
    return (f"far-end single talk ERLE {fe:.1f} dB; double talk SI-SDR {before:.1f} -> "
            f"{after:.1f} dB (near-end: rendered music) -> {folder}")
