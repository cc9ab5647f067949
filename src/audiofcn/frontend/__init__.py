"""The one feature frontend of audiofcn: every model gets its features from here.

All modules are batched ``nn.Module`` s working on ``(..., time)`` tensors on any device, and
have no state beyond constant buffers (window, mel filterbank), so they move with ``.to()`` and
export with ``torch.export``/TorchScript. :class:`StreamingSTFT` carries state across chunks.
"""

from audiofcn.frontend.mel import (
    LogMelConfig,
    LogMelFrontend,
    MelConfig,
    MelSpectrogram,
    choi_keras_logmel,
)
from audiofcn.frontend.stft import ISTFT, STFT, Spectrogram, STFTConfig
from audiofcn.frontend.streaming import StreamingSTFT
from audiofcn.frontend.waveform import WaveformConfig, WaveformFrontend, frame_waveform

__all__ = [
    "ISTFT",
    "STFT",
    "LogMelConfig",
    "LogMelFrontend",
    "MelConfig",
    "MelSpectrogram",
    "STFTConfig",
    "Spectrogram",
    "StreamingSTFT",
    "WaveformConfig",
    "WaveformFrontend",
    "choi_keras_logmel",
    "frame_waveform",
]
