"""Frontends and models refuse unusable inputs with a ValueError that says what they expect,
and convert the documented alternatives (float64, NumPy float arrays)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiofcn.frontend import STFT as STFTModule
from audiofcn.frontend import (
    LogMelFrontend,
    MelConfig,
    MelSpectrogram,
    Spectrogram,
    STFTConfig,
    StreamingSTFT,
    WaveformConfig,
    WaveformFrontend,
)

FRONTENDS = {
    "stft": lambda: STFTModule(STFTConfig(256, 64)),
    "spectrogram": lambda: Spectrogram(STFTConfig(256, 64)),
    "mel": lambda: MelSpectrogram(MelConfig(stft=STFTConfig(256, 64), n_mels=16)),
    "logmel": lambda: LogMelFrontend(),
    "waveform": lambda: WaveformFrontend(),
}

BAD = {
    "int16": torch.zeros(2, 4000, dtype=torch.int16),
    "bool": torch.zeros(2, 4000, dtype=torch.bool),
    "scalar": torch.tensor(0.5),
    "empty": torch.zeros(2, 0),
    "time_first": torch.zeros(4000, 2),
    "nan": torch.full((2, 4000), float("nan")),
    "inf": torch.full((2, 4000), float("inf")),
}


@pytest.mark.parametrize("bad", BAD, ids=list(BAD))
@pytest.mark.parametrize("name", FRONTENDS, ids=list(FRONTENDS))
def test_frontends_refuse_bad_audio(name: str, bad: str) -> None:
    with pytest.raises(ValueError, match=r"expected .*\(.*time\)") as err:
        FRONTENDS[name]()(BAD[bad])
    if bad == "time_first":
        assert "transpose" in str(err.value)


@pytest.mark.parametrize("name", FRONTENDS, ids=list(FRONTENDS))
def test_frontends_convert_numpy_and_float64(name: str) -> None:
    fe = FRONTENDS[name]()
    x = np.random.default_rng(0).standard_normal((2, 4000))
    want = fe(torch.from_numpy(x).float())
    got = fe(x)

    def real(t: torch.Tensor) -> np.ndarray:
        return (torch.view_as_real(t) if t.is_complex() else t).double().numpy()

    np.testing.assert_allclose(real(got), real(want), rtol=1e-4, atol=1e-4)
    assert fe(x.astype(np.float32)).dtype == want.dtype


@pytest.mark.parametrize("make", [
    lambda: MelSpectrogram(MelConfig(sample_rate=0)),
    lambda: MelSpectrogram(MelConfig(sample_rate=-8000)),
    lambda: WaveformFrontend(WaveformConfig(sample_rate=0)),
    lambda: STFTModule(STFTConfig(n_fft=0)),
    lambda: STFTModule(STFTConfig(n_fft=256, hop_length=0)),
    lambda: STFTModule(STFTConfig(n_fft=256, win_length=512)),
])
def test_bad_configs_raise(make) -> None:
    with pytest.raises(ValueError, match="must"):
        make()


def test_streaming_stft_refuses_ints_and_scalars() -> None:
    s = StreamingSTFT(STFTConfig(256, 64))
    with pytest.raises(ValueError, match="float"):
        s.push(torch.zeros(100, dtype=torch.int16))
    with pytest.raises(ValueError, match="time"):
        s.push(torch.tensor(1.0))
