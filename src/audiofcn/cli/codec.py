"""``audiofcn encode`` / ``audiofcn decode``: the SoundStream codec on files.

    audiofcn encode speech.wav speech.afc --kbps 6        # Lyra v2 port: 3.2, 6 or 9.2 kbps
    audiofcn decode speech.afc speech_decoded.wav          # picks the model that wrote the file
    audiofcn encode song.wav song.afc --model c16 --kbps 6  # the recipe-trained SoundStream

Files are coded block by block, so memory stays bounded for hours of audio.

Bad input (unreadable audio, truncated or corrupted ``.afc``, another format version, a file
written by another model, an unsupported bitrate) gives a one-line error, exit status 1 and no
output file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiofcn.cli.checks import positive_float

ARITHMETICS = ("float", "xnnpack", "tflite")


ARITHMETIC_HELP = ("Lyra model only: 'float' (default, fastest), 'xnnpack' (bit for bit the codes "
                   "and audio of Lyra's own runtime, TFLite with XNNPACK) or 'tflite' (TFLite's "
                   "reference kernels); the exact ones are about 2x slower")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="compress audio to a .afc file with the neural codec")
    p.add_argument("input", help="audio file (any rate/channels: resampled, mixed to mono)")
    p.add_argument("output", help="output .afc file")
    p.add_argument("--kbps", type=positive_float, default=6.0,
                   help="payload bitrate: 3.2, 6 or 9.2 with the default (Lyra) model, any "
                   "multiple of 0.2 up to 9.2; the c16 model codes 0.5 to 12 in 0.5 steps")
    p.add_argument("--model", help="codec model: 'lyra' (default, port of Lyra v2), 'c16' "
                   "(SoundStream trained by recipes/codec) or a checkpoint file")
    p.add_argument("--denoise", action="store_true",
                   help="FiLM denoise condition on (remove background noise while coding; "
                   "c16 model only)")
    p.add_argument("--arithmetic", choices=ARITHMETICS, default="float", help=ARITHMETIC_HELP)
    p.set_defaults(func=run_encode)

    d = sub.add_parser("decode", help="decode a .afc file to audio")
    d.add_argument("input", help=".afc file")
    d.add_argument("output", help="output audio file (.wav, .flac)")
    d.add_argument("--model", help="codec model (default: the shipped model named in the file)")
    d.add_argument("--arithmetic", choices=ARITHMETICS, default="float", help=ARITHMETIC_HELP)
    d.set_defaults(func=run_decode)


def _fail(message: str) -> int:
    # Same format as audiofcn.cli.main for one-line errors (bad arguments, not bad files).
    print(f"audiofcn: error: {message}", file=sys.stderr)
    return 1


def _check_paths(args: argparse.Namespace) -> None:
    from audiofcn.cli.checks import prepare_output, refuse_overwriting_inputs

    refuse_overwriting_inputs([args.output], [args.input])
    prepare_output(args.output)


def _model(path: str | None):  # noqa: ANN202 - lazy import keeps CLI start-up light
    from audiofcn.codec import load_codec

    return load_codec(path)


def _set_arithmetic(model, arithmetic: str) -> str | None:  # noqa: ANN001 - a codec model
    """Put ``model`` in ``arithmetic``; the error message if it has no such mode."""
    if arithmetic == "float":
        return None
    if model.model_name == "soundstream":
        return f"--arithmetic {arithmetic} needs the Lyra model (c16 has only float)"
    try:
        model.inference_arithmetic(arithmetic)
    except ValueError as err:
        return f"--arithmetic {arithmetic}: {err}"
    model.arithmetic = arithmetic
    return None


def run_encode(args: argparse.Namespace) -> int:
    from audiofcn.codec import encode_file

    if Path(args.output).suffix.lower() != ".afc":
        return _fail(f"{args.output}: output must end in .afc")
    _check_paths(args)
    model = _model(args.model)
    try:
        model.n_q_for_kbps(args.kbps)
    except ValueError as err:
        return _fail(f"--kbps {args.kbps:g}: {err}")
    if (message := _set_arithmetic(model, args.arithmetic)) is not None:
        return _fail(message)
    if args.denoise and model.model_name != "soundstream":
        return _fail("--denoise needs the c16 model (--model c16); the Lyra model has no "
                     "denoising mode")
    header, size = encode_file(args.input, args.output, args.kbps, model, args.denoise)
    seconds = header.length / header.sample_rate
    print(f"{args.output}: {header.bitrate / 1000:.3f} kbps payload "
          f"(n_q={header.n_q} x {header.codebook_bits} bits x {header.frame_rate:g} frames/s), "
          f"{seconds:.2f} s, {size} bytes ({8 * size / max(seconds, 1e-9) / 1000:.3f} kbps "
          f"with header and CRC)")
    return 0


def run_decode(args: argparse.Namespace) -> int:
    from audiofcn.codec import decode_file

    _check_paths(args)
    model = _model(args.model) if args.model else None
    if args.arithmetic != "float":
        if model is None:
            from audiofcn.codec import load_codec_for, read_afc

            model = load_codec_for(read_afc(args.input)[0])  # codes are small; bad files fail here
        if (message := _set_arithmetic(model, args.arithmetic)) is not None:
            return _fail(message)
    header = decode_file(args.input, args.output, model)  # BitstreamError is an AudioError
    print(f"{args.output}: {header.length / header.sample_rate:.2f} s at "
          f"{header.sample_rate} Hz from {header.bitrate / 1000:.3f} kbps codes")
    return 0


def codec_step(out: Path, catalog: Path) -> str:
    """Demo: round-trip 4 s of the first catalog song through the default codec (the Lyra v2
    port) at 6 kbps."""
    import torch

    from audiofcn.codec import decode_file, encode_audio, load_codec, write_afc
    from audiofcn.codec.training import si_sdr
    from audiofcn.io import load_audio, read_manifest

    rec = read_manifest(catalog / "manifest.jsonl")[0]
    model = load_codec()
    sr = model.config.sample_rate
    ref, _ = load_audio(rec.resolve(catalog), sr=sr, duration=4.0)
    afc, wav = out / "codec" / "song_6kbps.afc", out / "codec" / "song_6kbps.wav"
    header, codes = encode_audio(model, ref, model.n_q_for_kbps(6.0))
    size = write_afc(afc, header, codes)
    decode_file(afc, wav, model)
    dec, _ = load_audio(wav)
    with torch.no_grad():
        snr = float(si_sdr(dec[None], ref[None]))
    return (f"{rec.path} (first 4 s) -> {afc.name} ({size} bytes, {header.bitrate / 1000:g} kbps "
            f"payload) -> {wav.name}: SI-SDR {snr:.1f} dB (Lyra v2 port, a speech codec: "
            "music and phase are not its target, docs/codec.md)")
