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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("aec", help="cancel acoustic echo and noise given the far-end reference",
                       description=__doc__)
    p.add_argument("--mic", type=Path, required=True, help="microphone recording")
    p.add_argument("--ref", type=Path, required=True, help="far-end reference (loudspeaker)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output audio file")
    p.add_argument("--model", type=Path, default=None,
                   help="echo canceller checkpoint (default: the shipped model)")
    p.add_argument("--stream", action="store_true",
                   help="process in 10 ms frames through the streaming API")
    p.set_defaults(func=run)


def default_model_path() -> Path:
    return Path(__file__).resolve().parents[1] / "pretrained" / "aec_default.safetensors"


def load_canceller(path: Path | None = None):
    """The echo canceller at ``path`` (default: the shipped one), in eval mode."""
    from audiofcn.cli.main import UserError
    from audiofcn.models import load_model
    from audiofcn.models.base import CheckpointError
    from audiofcn.models.echo import EchoCanceller

    p = path or default_model_path()
    if not p.exists():
        raise CheckpointError(f"{p}: echo canceller checkpoint not found")
    model = load_model(p)
    if not isinstance(model, EchoCanceller):
        raise UserError(f"{p}: is a {model.model_name!r} checkpoint, not an echo canceller")
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


def run(args: argparse.Namespace) -> int:
    import math

    from audiofcn.cli.checks import prepare_output, refuse_overwriting_inputs
    from audiofcn.cli.main import UserError
    from audiofcn.io import AudioError, audio_info, load_audio, resample, save_audio

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
    sr = model.config.sample_rate
    mic, file_sr = load_audio(args.mic)
    ref, _ = load_audio(args.ref)
    mic, ref = resample(mic, file_sr, sr)[0], resample(ref, file_sr, sr)[0]
    out = cancel(model, mic, ref, stream=args.stream)
    out = resample(out[None], sr, file_sr)[..., : mi.frames]
    try:
        save_audio(args.out, out, file_sr, subtype="FLOAT" if
                   args.out.suffix.lower() == ".wav" else None)
    except (OSError, ValueError, RuntimeError) as err:
        raise AudioError(args.out, f"cannot write output ({err})") from None
    rms = lambda x: float(x.pow(2).mean().sqrt())  # noqa: E731
    change = 20 * math.log10(max(rms(mic), 1e-9) / max(rms(out), 1e-9))
    print(f"{args.out}: {mi.frames / file_sr:.2f} s at {file_sr} Hz, level reduced by "
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

    from audiofcn.data.aec_sim import simulate_echo
    from audiofcn.eval.aec import erle, si_sdr
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
