"""Models refuse unusable waveforms with a ValueError naming the expected shape and dtype."""

from __future__ import annotations

import pytest
import torch

from audiofcn.models.echo import EchoCanceller, EchoCancellerConfig
from audiofcn.models.fcn import FCN, FCNConfig
from audiofcn.models.soundstream import SoundStream, SoundStreamConfig

TINY_AEC = EchoCancellerConfig(encoder_channels=(4, 8), bottleneck_channels=12, growth=6,
                               layers_per_block=2, num_blocks=1)


@pytest.fixture(scope="module")
def aec() -> EchoCanceller:
    return EchoCanceller(TINY_AEC).eval()


@pytest.mark.parametrize("bad", [torch.zeros(1, 1600, dtype=torch.int16), torch.tensor(0.1),
                                 torch.zeros(1, 0), torch.full((1, 1600), float("nan"))])
def test_enhance_refuses_bad_audio(aec: EchoCanceller, bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="expected"):
        aec.enhance(bad, bad)


def test_process_refuses_empty_frames_and_batch_changes(aec: EchoCanceller) -> None:
    s = aec.open_stream()
    hop = aec.hop_length
    s.process(torch.zeros(2, hop), torch.zeros(2, hop))
    with pytest.raises(ValueError, match="batch"):
        s.process(torch.zeros(3, hop), torch.zeros(3, hop))
    with pytest.raises(ValueError, match="0 samples"):
        s.process(torch.zeros(2, 0), torch.zeros(2, 0))
    with pytest.raises(ValueError, match="float"):
        s.process(torch.zeros(2, hop, dtype=torch.int16), torch.zeros(2, hop, dtype=torch.int16))
    aec.reset_stream()
    with pytest.raises(ValueError, match="0 samples"):
        aec.process(torch.zeros(0), torch.zeros(0))


def test_fcn_tagger_refuses_int_audio() -> None:
    model = FCN(FCNConfig()).eval()
    with pytest.raises(ValueError, match="expected"):
        model(torch.zeros(1, 16000, dtype=torch.int16))


def test_soundstream_refuses_bad_audio() -> None:
    model = SoundStream(SoundStreamConfig()).eval()
    for bad in (torch.zeros(1, 1, 320, dtype=torch.int16), torch.zeros(1, 1, 0),
                torch.tensor(0.0), torch.full((1, 1, 320), float("nan"))):
        with pytest.raises(ValueError, match="expected"):
            model.encode(bad)


def test_separator_refuses_integer_or_complex_spectrograms() -> None:
    from audiofcn.frontend import STFTConfig
    from audiofcn.models.separator import FCNSeparator, FCNSeparatorConfig

    model = FCNSeparator(FCNSeparatorConfig(sample_rate=8000, stft=STFTConfig(256, 64),
                                            channels=(4, 8))).eval()
    for bad in (torch.zeros(1, 129, 20, dtype=torch.int16),
                torch.zeros(1, 129, 20, dtype=torch.complex64)):
        with pytest.raises(ValueError, match="expected float magnitudes"):
            model.predict_mask(bad)
