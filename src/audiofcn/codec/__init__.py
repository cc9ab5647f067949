"""Neural audio codec: the ``.afc`` file format, file-level encode/decode and streaming.

``encode_file`` / ``decode_file`` are what ``audiofcn encode`` / ``audiofcn decode`` call;
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
from audiofcn.models.soundstream import SoundStream

DEFAULT_MODEL = "soundstream_16k_c16.safetensors"


def default_model_path() -> Path:
    return Path(str(resources.files("audiofcn") / "pretrained" / DEFAULT_MODEL))


def load_codec(path: str | os.PathLike[str] | None = None) -> SoundStream:
    """The shipped 16 kHz C=16 model, or a SoundStream checkpoint at ``path``."""
    p = Path(path) if path is not None else default_model_path()
    if path is None and not p.exists():
        raise CheckpointError(f"{p}: the default codec model is not installed")
    return SoundStream.from_pretrained(p)


@torch.no_grad()
def encode_audio(model: SoundStream, audio: torch.Tensor, n_q: int,
                 denoise: bool = False) -> tuple[CodecHeader, np.ndarray]:
    """Mono audio ``(T,)`` or ``(1, T)`` at the model's rate -> (header, codes
    ``(n_q, frames)``)."""
    x = audio.reshape(1, 1, -1).float()
    codes = model.eval().encode(x, n_q, denoise=denoise)[0].cpu().numpy()
    header = CodecHeader(model=model.model_name, model_id=model_fingerprint(model),
                         sample_rate=model.config.sample_rate, hop_length=model.hop_length,
                         n_q=n_q, codebook_bits=model.quantizer.bits_per_code,
                         num_frames=codes.shape[1], length=x.shape[-1], denoise=denoise)
    return header, codes


def check_compatible(header: CodecHeader, model: SoundStream, name: str) -> None:
    """Raise :class:`BitstreamError` unless ``model`` is the one that wrote the file."""
    if header.model != model.model_name or header.model_id != model_fingerprint(model):
        raise BitstreamError(name, f"encoded with model {header.model}:{header.model_id}, but "
                             f"the loaded model is {model.model_name}:"
                             f"{model_fingerprint(model)} (pass the encoder's --model)")
    if header.n_q > model.config.num_quantizers or header.sample_rate != \
            model.config.sample_rate or header.hop_length != model.hop_length:
        raise BitstreamError(name, "header does not fit the model")


@torch.no_grad()
def decode_codes(model: SoundStream, header: CodecHeader, codes: np.ndarray,
                 name: str = "<codes>") -> torch.Tensor:
    """(header, codes) -> audio ``(1, length)``."""
    c = torch.from_numpy(codes)[None].long()
    if (c >= model.config.codebook_size).any():
        raise BitstreamError(name, "code out of range for the model's codebooks")
    return model.eval().decode(c, header.length)[0]


def encode_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], kbps: float,
                model: SoundStream, denoise: bool = False) -> tuple[CodecHeader, int]:
    """Encode an audio file to ``.afc``; returns (header, file size in bytes)."""
    from audiofcn.io import AudioError, load_audio

    n_q = model.n_q_for_kbps(kbps)
    audio, _ = load_audio(src, sr=model.config.sample_rate, mono=True)
    if audio.numel() == 0:
        raise AudioError(src, "no audio samples to encode")
    header, codes = encode_audio(model, audio, n_q, denoise)
    return header, write_afc(dst, header, codes)


def decode_file(src: str | os.PathLike[str], dst: str | os.PathLike[str],
                model: SoundStream) -> CodecHeader:
    """Decode a ``.afc`` file to a WAV file (written only when decoding succeeded)."""
    from audiofcn.io import save_audio

    header, codes = read_afc(src)
    check_compatible(header, model, str(src))
    audio = decode_codes(model, header, codes, str(src))
    save_audio(dst, audio.clamp(-1, 1), header.sample_rate)
    return header


__all__ = ["FORMAT_VERSION", "MAGIC", "BitstreamError", "CodecHeader", "StreamingDecoder",
           "StreamingEncoder", "check_compatible", "decode_codes", "decode_file",
           "default_model_path", "encode_audio", "encode_file", "load_codec",
           "model_fingerprint", "read_afc", "write_afc"]
