"""Evaluate the codec vs Opus on held-out real speech and music clips, in one run.

    python recipes/codec/evaluate.py --data runs/codec/data --out runs/codec/eval \
        [--speechocean ~/data/speechocean762 --speechocean-utts 30]
    python recipes/codec/evaluate.py --model runs/codec/small/best.safetensors --ours-kbps 3 6

For every test clip (``test.jsonl`` from ``prepare.py``: speakers and recordings never trained
on; with ``--speechocean`` also one utterance each of a seeded subset of the ``test/`` speakers
of a copy of jimbozhang/speechocean762), each codec system through the real ``.afc`` bitstream
and Opus (``opusenc --hard-cbr``) at 6/12 kbps: PESQ-WB, STOI, ViSQOL (speech mode, when
visqol-python is installed: ``pip install 'audiofcn[visqol]'``), SI-SDR, mel distance and the
bitrate actually written (ours: payload bits / duration; Opus: ``opusinfo``'s "w/o overhead"
payload bitrate). Systems: by default the shipped Lyra v2 port at 3.2/6/9.2 kbps and the
recipe-trained ``c16`` model at 6/12 kbps; ``--model`` (with ``--ours-kbps``) scores one
checkpoint as "ours"; ``--system NAME=MODEL:K1,K2`` adds any. Writes ``report.json``,
``table.md`` and ``spectrograms.png`` (reference / codecs / Opus) to ``--out``, after every clip.
``--split valid`` scores the validation clips instead, to choose between checkpoints without
the test clips.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from audiofcn.codec import encode_audio, load_codec
from audiofcn.codec.bitstream import decode_bytes, encode_bytes
from audiofcn.codec.training import si_sdr
from audiofcn.frontend import LogMelConfig, LogMelFrontend, MelConfig, STFTConfig
from audiofcn.io import load_audio, read_manifest, save_audio

SR = 16000


def build_clips(manifest: Path, seconds: float, max_per_group: int = 2
                ) -> list[tuple[str, str, torch.Tensor]]:
    """(name, kind, audio (T,)) clips of about ``seconds``: short files of one group (FSDD
    digits, sentences) are concatenated; long recordings give up to ``max_per_group`` excerpts
    from different places."""
    groups: dict[str, list] = defaultdict(list)
    for r in read_manifest(manifest):
        groups[r.group or r.path].append(r)
    clips = []
    n = int(seconds * SR)
    for group, recs in sorted(groups.items()):
        kind = recs[0].label or "music"
        waves = [load_audio(r.path, sr=SR)[0][0] for r in recs]
        if sum(w.numel() for w in waves) < n // 2:
            continue
        if len(waves) > 1 and all(w.numel() < n for w in waves):
            cat = torch.cat(waves)
            pieces = [cat[i:i + n] for i in range(0, cat.numel(), n)][:max_per_group]
        else:
            pieces = []
            for w in waves:
                starts = [0] if w.numel() <= 2 * n else \
                    np.linspace(int(0.1 * w.numel()), w.numel() - n, max_per_group).astype(int)
                pieces += [w[s:s + n] for s in starts]
            pieces = pieces[:max_per_group]
        for i, p in enumerate(pieces):
            if p.numel() >= SR and p.abs().max() > 1e-3:
                peak = p.abs().max()
                clips.append((f"{group}#{i}", kind, p * (0.9 / peak if peak > 0.9 else 1.0)))
    return clips


def speechocean_clips(root: Path, n: int, seed: int = 0
                      ) -> list[tuple[str, str, torch.Tensor]]:
    """One utterance each of ``n`` speakers drawn (seeded) from speechocean762's ``test/``."""
    import random

    by_spk: dict[str, list[str]] = defaultdict(list)
    for line in (root / "test" / "wav.scp").read_text().splitlines():
        if line.strip():
            _, rel = line.split()
            by_spk[Path(rel).parent.name].append(rel)
    rng = random.Random(seed)
    speakers = rng.sample(sorted(by_spk), min(n, len(by_spk)))
    clips = []
    for spk in sorted(speakers):
        rel = rng.choice(sorted(by_spk[spk]))
        audio = load_audio(root / rel, sr=SR)[0][0]
        peak = audio.abs().max()
        clips.append((f"speechocean-{spk}#{Path(rel).stem}", "speech",
                      audio * (0.9 / peak if peak > 0.9 else 1.0)))
    return clips


class Metrics:
    def __init__(self, visqol: bool = True) -> None:
        self.visqol = None
        if visqol:
            try:
                from visqol import VisqolApi
            except ImportError:
                print("visqol-python not installed: no ViSQOL column")
            else:
                self.visqol = VisqolApi()
                self.visqol.create(mode="speech")  # 16 kHz speech mode, lattice mapper
        self.logmel = [LogMelFrontend(LogMelConfig(MelConfig(SR, STFTConfig(w, w // 4), 64),
                                                   top_db=None)) for w in (512, 2048)]

    def __call__(self, ref: torch.Tensor, deg: torch.Tensor) -> dict[str, float]:
        from pesq import NoUtterancesError, PesqError, pesq
        from pystoi import stoi

        deg = deg[: ref.numel()]
        if deg.numel() < ref.numel():
            deg = torch.nn.functional.pad(deg, (0, ref.numel() - deg.numel()))
        r, d = ref.numpy().astype(np.float64), deg.numpy().astype(np.float64)
        try:
            p = float(pesq(SR, r, d, "wb"))
        except (NoUtterancesError, PesqError):
            p = math.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = float(stoi(r, d, SR, extended=False))
        with torch.no_grad():
            # Mel distance: mean |log-mel difference| in dB (64 mels, windows 512 and 2048).
            md = float(np.mean([(f(ref) - f(deg)).abs().mean() for f in self.logmel]))
            sdr = float(si_sdr(deg[None], ref[None]))
        v = math.nan
        if self.visqol is not None:
            v = float(self.visqol.measure_from_arrays(r, d, SR).moslqo)
        return {"pesq_wb": p, "stoi": s, "visqol": v, "si_sdr": sdr, "mel_distance": md}


def ours(model, audio: torch.Tensor, kbps: float) -> tuple[torch.Tensor, float, float]:
    """Code through the real file format; returns (decoded, payload kbps, file kbps)."""
    n_q = model.n_q_for_kbps(kbps)
    header, codes = encode_audio(model, audio, n_q)
    data = encode_bytes(header, codes)
    header2, codes2 = decode_bytes(data)
    with torch.no_grad():
        y = model.decode(torch.from_numpy(codes2)[None], header2.length)[0, 0]
    seconds = audio.numel() / SR
    return y, header2.payload_bits / seconds / 1000, 8 * len(data) / seconds / 1000


def opus(audio: torch.Tensor, kbps: float, tmp: Path) -> tuple[torch.Tensor, float, float]:
    """opusenc --hard-cbr at ``kbps``; returns (decoded, payload kbps, file kbps)."""
    src, enc, dec = tmp / "ref.wav", tmp / "x.opus", tmp / "dec.wav"
    save_audio(src, audio[None].clamp(-1, 1), SR, subtype="PCM_16")
    subprocess.run(["opusenc", "--quiet", "--hard-cbr", "--bitrate", f"{kbps:g}", str(src),
                    str(enc)], check=True, capture_output=True)
    info = subprocess.run(["opusinfo", str(enc)], check=True, capture_output=True,
                          text=True).stdout
    m = re.search(r"w/o overhead: ([0-9.]+) kbit/s", info)
    payload = float(m.group(1)) if m else math.nan
    subprocess.run(["opusdec", "--quiet", "--rate", str(SR), str(enc), str(dec)], check=True,
                   capture_output=True)
    y, _ = load_audio(dec, sr=SR)
    return y[0], payload, 8 * enc.stat().st_size / (audio.numel() / SR) / 1000


def spectrogram_png(path: Path, name: str, rows: list[tuple[str, torch.Tensor]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fe = LogMelFrontend(LogMelConfig(MelConfig(SR, STFTConfig(1024, 160), 80)))
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.1 * len(rows)), sharex=True)
    for ax, (title, a) in zip(axes, rows, strict=True):
        with torch.no_grad():
            s = fe(a[None])[0].numpy()
        ax.imshow(s, origin="lower", aspect="auto", cmap="magma", vmin=s.max() - 80,
                  extent=(0, a.numel() / SR, 0, s.shape[0]))
        ax.set_ylabel("mel bin")
        ax.set_title(title, fontsize=9)
    axes[-1].set_xlabel(f"time (s) - {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _mean(values: list[float]) -> float:
    """Mean over the finite values (PESQ is NaN on clips it finds no speech in)."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def write_report(args: argparse.Namespace, specs: list[str], clips: list,
                 rows: list[dict]) -> str:
    """Summaries per kind and system -> ``report.json`` and ``table.md``; returns the table.
    Called after every clip, so a long run leaves its partial result."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    systems_seen = list(dict.fromkeys(r["system"] for r in rows))
    for kind in ("speech", "music", "all"):
        summary[kind] = {}
        for system in systems_seen:
            sel = [r for r in rows if r["system"] == system and kind in ("all", r["kind"])]
            summary[kind][system] = {k: _mean([r[k] for r in sel]) for k in
                                     ("pesq_wb", "stoi", "visqol", "si_sdr", "mel_distance",
                                      "payload_kbps", "file_kbps")}
            summary[kind][system]["clips"] = len(sel)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"systems": specs, "split": args.split, "clips": len(clips),
              "clips_done": len(dict.fromkeys(r["clip"] for r in rows)),
              "seconds": args.seconds, "summary": summary, "rows": rows}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    lines = []
    for kind in ("speech", "music", "all"):
        if not summary[kind][systems_seen[0]]["clips"]:
            continue
        lines += [f"\n**{kind}** ({summary[kind][systems_seen[0]]['clips']:.0f} clips)\n",
                  "| system | payload kbps | PESQ-WB | STOI | ViSQOL | SI-SDR (dB) | "
                  "mel dist (dB) |", "|---|---|---|---|---|---|---|"]
        for system, s in summary[kind].items():
            lines.append(f"| {system} | {s['payload_kbps']:.2f} | {s['pesq_wb']:.2f} | "
                         f"{s['stoi']:.3f} | {s['visqol']:.2f} | {s['si_sdr']:.1f} | "
                         f"{s['mel_distance']:.2f} |")
    table = "\n".join(lines)
    (args.out / "table.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="SoundStream vs Opus on held-out real clips")
    ap.add_argument("--model", default=None,
                    help="one checkpoint scored as 'ours' at --ours-kbps (default: the shipped "
                         "Lyra port at 3.2/6/9.2 kbps and c16 model at 6/12 kbps)")
    ap.add_argument("--system", action="append", default=[], metavar="NAME=MODEL:K1,K2",
                    help="a codec system: name, model (shipped name or file) and bitrates")
    ap.add_argument("--speechocean", type=Path, default=None,
                    help="copy of speechocean762: add test/ speakers' utterances")
    ap.add_argument("--speechocean-utts", type=int, default=30)
    ap.add_argument("--no-visqol", action="store_true")
    ap.add_argument("--speech-only", action="store_true", help="skip the music clips")
    ap.add_argument("--data", type=Path, default=Path("runs/codec/data"))
    ap.add_argument("--out", type=Path, default=Path("runs/codec/eval"))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--ours-kbps", type=float, nargs="+", default=[3.0, 6.0, 12.0],
                    help="bitrates of --model")
    ap.add_argument("--opus-kbps", type=float, nargs="+", default=[6.0, 12.0])
    ap.add_argument("--max-clips", type=int, default=None)
    ap.add_argument("--split", choices=("test", "valid"), default="test",
                    help="valid: the validation clips, for choosing a checkpoint without "
                         "looking at the test clips")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if shutil.which("opusenc") is None:
        ap.error("opusenc not found: install opus-tools (apt-get install opus-tools)")
    codecs: list[tuple[str, object, float]] = []  # (name, model, kbps)
    specs = args.system or ([f"ours={args.model}:" + ",".join(f"{k:g}" for k in args.ours_kbps)]
                            if args.model else ["lyra=lyra:3.2,6,9.2", "c16=c16:6,12"])
    for spec in specs:
        name, _, rest = spec.partition("=")
        path, _, kbps = rest.rpartition(":")
        model = load_codec(path).eval()
        codecs += [(name, model, float(k)) for k in kbps.split(",")]
    clips = build_clips(args.data / f"{args.split}.jsonl", args.seconds)
    if args.speech_only:
        clips = [c for c in clips if c[1] == "speech"]
    clips = clips[: args.max_clips]
    if args.speechocean is not None and args.split == "test":
        extra = speechocean_clips(args.speechocean.expanduser(), args.speechocean_utts)
        # interleave, so a partial run covers both sets
        mixed = [c for pair in zip(clips, extra, strict=False) for c in pair]
        n = min(len(clips), len(extra))
        clips = mixed + clips[n:] + extra[n:]
    metrics = Metrics(visqol=not args.no_visqol)
    rows = []
    example: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory() as td:
        for name, kind, audio in clips:
            systems = [(f"{n} {k:g} kbps", lambda a, m=m, k=k: ours(m, a, k))
                       for n, m, k in codecs]
            systems += [(f"opus {k:g} kbps", lambda a, k=k: opus(a, k, Path(td)))
                        for k in args.opus_kbps]
            for system, fn in systems:
                y, payload, file_kbps = fn(audio)
                rows.append({"clip": name, "kind": kind, "system": system,
                             "payload_kbps": payload, "file_kbps": file_kbps,
                             **metrics(audio, y)})
                if kind == "speech" and "ref" not in example:
                    example.setdefault(system, y)
            if kind == "speech" and "ref" not in example and example:
                example["ref"] = audio
                example["name"] = name  # type: ignore[assignment]
            print(f"{name} ({kind}): " + ", ".join(
                f"{r['system']} PESQ {r['pesq_wb']:.2f}" for r in rows[-len(systems):]),
                flush=True)
            write_report(args, specs, clips, rows)
    table = write_report(args, specs, clips, rows)
    print(table)
    if "ref" in example:
        seen = dict.fromkeys(r["system"] for r in rows)
        order = ["ref"] + [s for s in seen if " 6 kbps" in s or " 12 kbps" in s]
        spectrogram_png(args.out / "spectrograms.png", str(example["name"]),
                        [("reference" if s == "ref" else s, example[s]) for s in order
                         if s in example])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
