"""Neural audio codec: the ``.afc`` file format, file-level encode/decode and streaming.

``encode_file`` / ``decode_file`` are what ``audiofcn encode`` / ``audiofcn decode`` call (block
by block, so hours of audio fit in bounded memory); the default model is the port of Lyra v2's
SoundStream (3.2 / 6 / 9.2 kbps), the recipe-trained ``c16`` model stays selectable;
:class:`StreamingEncoder` / :class:`StreamingDecoder` code chunk by chunk with one frame of latency.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from audiofcn.codec.bitstream import (
    FORMAT_VERSION,
    MAGIC,
    BitstreamError,
    CodecHeader,
    model_fingerprint,
    read_afc,
    write_afc,
)
from audiofcn.codec.streaming import StreamingDecoder, StreamingEncoder
from audiofcn.models.base import CheckpointError
from audiofcn.models.lyra_soundstream import LyraSoundStream
from audiofcn.models.soundstream import SoundStream

CodecModel = SoundStream | LyraSoundStream

DEFAULT_MODEL = "soundstream_lyra_16k.safetensors"
# Shipped codec models by short name (``--model lyra`` / ``--model c16``) and file stem.
SHIPPED_MODELS = {"lyra": "soundstream_lyra_16k.safetensors",
                  "c16": "soundstream_16k_c16.safetensors"}
BLOCK_SECONDS = 10.0  # audio per block when coding files (bounds memory on long files)
# The c16 model's stream plans keep per-layer buffers sized by the chunk: feed it 1 s at a time.
PLAN_CHUNK_SECONDS = 1.0


def _model_chunk(model: CodecModel, block_seconds: float) -> int:
    seconds = min(block_seconds, PLAN_CHUNK_SECONDS) if isinstance(model, SoundStream) \
        else block_seconds
    return max(1, int(seconds * model.config.sample_rate))


def _shipped_names() -> dict[str, str]:
    return {**SHIPPED_MODELS, **{Path(f).stem: f for f in SHIPPED_MODELS.values()}}


def shipped_model_path(name: str = "lyra") -> Path:
    """Path of a shipped codec model: ``lyra`` (default), ``c16``, or a file stem."""
    files = _shipped_names()
    if name not in files:
        raise CheckpointError(f"unknown shipped codec model {name!r}; known: "
                              f"{sorted(files)}")
    return Path(str(resources.files("audiofcn") / "pretrained" / files[name]))


def default_model_path() -> Path:
    return shipped_model_path("lyra")


def load_codec(path: str | os.PathLike[str] | None = None) -> CodecModel:
    """A codec model: the shipped Lyra port by default, a shipped model by short name
    (``lyra``, ``c16``) or a checkpoint file of either model class."""
    from audiofcn.models import load_model

    shipped = path is None or (str(path) in _shipped_names() and not Path(path).exists())
    p = shipped_model_path("lyra" if path is None else str(path)) if shipped else Path(path)
    if shipped and not p.exists():
        raise CheckpointError(f"{p}: the shipped codec model is not installed")
    model = load_model(p)
    if not isinstance(model, SoundStream | LyraSoundStream):
        raise CheckpointError(f"{p}: a {model.model_name!r} model is not a codec")
    return model


def load_codec_for(header: CodecHeader) -> CodecModel:
    """The shipped model that wrote a ``.afc`` file (the file records model name and id)."""
    for name in SHIPPED_MODELS:
        p = shipped_model_path(name)
        if not p.exists():
            continue
        model = load_codec(p)
        if model.model_name == header.model and model_fingerprint(model) == header.model_id:
            return model
    return load_codec()  # check_compatible will name the mismatch


@torch.no_grad()
def encode_audio(model: CodecModel, audio: torch.Tensor, n_q: int,
                 denoise: bool = False) -> tuple[CodecHeader, np.ndarray]:
    """Mono audio ``(T,)`` or ``(1, T)`` at the model's rate -> (header, codes
    ``(n_q, frames)``)."""
    x = audio.reshape(1, 1, -1).float()
    codes = model.eval().encode(x, n_q, denoise=denoise)[0].cpu().numpy()
    return _header(model, n_q, codes.shape[1], x.shape[-1], denoise), codes


def _header(model: CodecModel, n_q: int, frames: int, length: int,
            denoise: bool) -> CodecHeader:
    return CodecHeader(model=model.model_name, model_id=model_fingerprint(model),
                       sample_rate=model.config.sample_rate, hop_length=model.hop_length,
                       n_q=n_q, codebook_bits=model.quantizer.bits_per_code,
                       num_frames=frames, length=length, denoise=denoise)


def check_compatible(header: CodecHeader, model: CodecModel, name: str) -> None:
    """Raise :class:`BitstreamError` unless ``model`` is the one that wrote the file."""
    if header.model != model.model_name or header.model_id != model_fingerprint(model):
        raise BitstreamError(name, f"encoded with model {header.model}:{header.model_id}, but "
                             f"the loaded model is {model.model_name}:"
                             f"{model_fingerprint(model)} (pass the encoder's --model)")
    if header.n_q > model.config.num_quantizers or header.sample_rate != \
            model.config.sample_rate or header.hop_length != model.hop_length:
        raise BitstreamError(name, "header does not fit the model")


@torch.no_grad()
def decode_codes(model: CodecModel, header: CodecHeader, codes: np.ndarray,
                 name: str = "<codes>") -> torch.Tensor:
    """(header, codes) -> audio ``(1, length)``."""
    c = torch.from_numpy(codes)[None].long()
    if (c >= model.config.codebook_size).any():
        raise BitstreamError(name, "code out of range for the model's codebooks")
    return model.eval().decode(c, header.length)[0]


def encode_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], kbps: float,
                model: CodecModel, denoise: bool = False,
                block_seconds: float = BLOCK_SECONDS) -> tuple[CodecHeader, int]:
    """Encode an audio file to ``.afc`` block by block (memory bounded by the block and the
    codes, not the file); returns (header, file size in bytes)."""
    from audiofcn.io import AudioError
    from audiofcn.io.stream import read_mono_blocks

    n_q = model.n_q_for_kbps(kbps)
    enc = StreamingEncoder(model, n_q, denoise)
    parts, length = [], 0
    step = _model_chunk(model, block_seconds)
    for block in read_mono_blocks(src, model.config.sample_rate, block_seconds):
        length += block.numel()
        for i in range(0, block.numel(), step):
            parts.append(enc.push(block[None, None, i:i + step])[0].numpy().astype(np.int32))
    if length == 0:
        raise AudioError(src, "no audio samples to encode")
    parts.append(enc.flush()[0].numpy().astype(np.int32))
    codes = np.concatenate(parts, axis=1)
    header = _header(model, n_q, codes.shape[1], length, denoise)
    return header, write_afc(dst, header, codes)


def decode_file(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                model: CodecModel | None = None,
                block_seconds: float = BLOCK_SECONDS) -> CodecHeader:
    """Decode a ``.afc`` file to audio block by block (written only when decoding succeeded).
    ``model=None`` picks the shipped model that wrote the file."""
    import soundfile as sf

    from audiofcn.io import AudioError
    from audiofcn.io.audio import atomic_output

    header, codes = read_afc(src)
    model = load_codec_for(header) if model is None else model
    check_compatible(header, model, str(src))
    if codes.size and int(codes.max()) >= model.config.codebook_size:
        raise BitstreamError(str(src), "code out of range for the model's codebooks")
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(Path(dst).suffix.lower())
    if fmt is None:
        raise AudioError(dst, "unsupported output format (use .wav, .flac or .ogg)")
    if header.length == 0:
        raise AudioError(dst, "refusing to write zero-length audio")
    dec = StreamingDecoder(model)
    step = max(1, _model_chunk(model, block_seconds) // model.hop_length)
    left = header.length
    with atomic_output(dst) as tmp, sf.SoundFile(str(tmp), "w", header.sample_rate, 1,
                                                 format=fmt) as out:
        for i in range(0, header.num_frames, step):
            y = dec.push(torch.from_numpy(codes[:, i:i + step])[None].long())[0, 0, :left]
            if not torch.isfinite(y).all():
                raise AudioError(dst, "refusing to write NaN or Inf samples")
            out.write(y.clamp(-1, 1).numpy())
            left -= y.numel()
    return header


__all__ = ["FORMAT_VERSION", "MAGIC", "BitstreamError", "CodecHeader", "StreamingDecoder",
           "StreamingEncoder", "check_compatible", "decode_codes", "decode_file",
           "default_model_path", "encode_audio", "encode_file", "load_codec",
           "load_codec_for", "model_fingerprint", "read_afc", "shipped_model_path",
           "write_afc"]
