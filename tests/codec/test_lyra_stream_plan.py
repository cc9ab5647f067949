"""The Lyra port's compiled streaming plans (audiofcn.codec.lyra_stream) against the offline model.

Without int8 rounding the plans differ from the offline model only in the summation order inside
matrix products (float rounding). With it, such a difference moves a value by one int8 step when
it lies that close to a rounding boundary, so on the shipped model the tests bound the fraction of
codes and samples that differ (measured: docs/codec.md, "Speed and memory of the Lyra port").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiofcn.codec import StreamingDecoder, StreamingEncoder, load_codec, lyra_stream
from audiofcn.models.lyra_soundstream import LyraSoundStream, LyraSoundStreamConfig
from audiofcn.nn import quantized_stream_plan as qsp

needs_numba = pytest.mark.skipif(not qsp.AVAILABLE, reason="numba missing or AUDIOFCN_NO_NUMBA")


def _voiced(seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 110 + 30 * np.sin(2 * np.pi * 0.9 * t)
    x = sum(np.sin(k * 2 * np.pi * np.cumsum(f0) / 16000) / k for k in range(1, 10))
    return torch.from_numpy((0.1 * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32))


def _small(quantized: bool = False) -> LyraSoundStream:
    """Lyra's layout at 1/8 of the width (grouped, depthwise, strided and transposed convs all
    there), random weights; with ``quantized`` every activation and conv output is rounded."""
    cfg = LyraSoundStreamConfig(channels=8, group_width=8, up_group_width=16,
                                bottleneck_groups=2, embedding_dim=8, num_quantizers=6)
    torch.manual_seed(0)
    model = LyraSoundStream(cfg)
    if quantized:
        names = tuple(n for n, m in model.named_modules()
                      if type(m).__name__ in ("QCausalConv1d", "QCausalConvTranspose1d",
                                              "QLeakyReLU", "QAdd"))
        model = LyraSoundStream(LyraSoundStreamConfig(**{**cfg.__dict__, "quantized": names}))
        for m in model.modules():
            if type(m).__name__ == "FakeQuant":
                m.scale.uniform_(0.02, 0.05)
                m.zero_point.copy_(torch.randint(-3, 4, m.zero_point.shape).float())
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.codebook.normal_(0, 0.3)
    return model.eval()


def _stream(model: LyraSoundStream, x: torch.Tensor, n_q: int, sizes: list[int],
            fused: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes from StreamingEncoder (chunks of ``sizes``, repeated) and the audio that
    StreamingDecoder makes of the offline codes, one frame per push."""
    enc = StreamingEncoder(model, n_q, fused=fused)
    parts, i, j = [], 0, 0
    while i < x.shape[-1]:
        parts.append(enc.push(x[..., i:i + sizes[j % len(sizes)]]))
        i, j = i + sizes[j % len(sizes)], j + 1
    parts.append(enc.flush())
    offline = model.encode(x.reshape(-1, 1, x.shape[-1]), n_q)
    dec = StreamingDecoder(model, fused=fused)
    audio = torch.cat([dec.push(offline[..., f:f + 1]) for f in range(offline.shape[-1])], -1)
    return torch.cat(parts, -1), audio


@needs_numba
def test_plan_equals_offline_without_rounding() -> None:
    model = _small()
    assert lyra_stream.usable(model, None) and not lyra_stream.usable(model, False)
    x = torch.stack([_voiced(0.5), _voiced(0.5, seed=1) * 3])  # a batch of two streams
    codes, audio = _stream(model, x, 6, [320, 1, 639, 2000])
    offline = model.encode(x[:, None], 6)
    ref = model.decode(offline)
    assert codes.shape == offline.shape and audio.shape == ref.shape == (2, 1, 8000)
    assert float((codes == offline).float().mean()) >= 0.99
    assert float((audio - ref).abs().max()) < 1e-5 * float(ref.abs().max())
    # the latents themselves, before the residual VQ
    plan = qsp.QuantizedStreamPlan(model.encoder, 320, 1)
    z = plan.step(x[:, :, None], plan.new_state(2))
    with torch.no_grad():
        z_ref = model.embed(x[:, None]).transpose(1, 2)
    assert float((z - z_ref).abs().max()) < 1e-5 * float(z_ref.abs().max())


@needs_numba
def test_plan_equals_offline_with_int8_rounding() -> None:
    model = _small(quantized=True)
    x = _voiced(1.0, seed=2)[None]
    codes, audio = _stream(model, x, 6, [320])
    offline = model.encode(x[:, None], 6)
    ref = model.decode(offline)
    assert float((codes == offline).float().mean()) >= 0.99
    close = (audio - ref).abs() <= 1e-5
    assert float(close.float().mean()) >= 0.99


@pytest.fixture(scope="module")
def port() -> LyraSoundStream:
    model = load_codec()
    assert isinstance(model, LyraSoundStream)
    return model.eval()


@pytest.mark.parametrize("fused", [None, False])
def test_shipped_port_streaming_paths(port: LyraSoundStream, fused: bool | None) -> None:
    if fused is None and not qsp.AVAILABLE:
        pytest.skip("numba missing or AUDIOFCN_NO_NUMBA")
    x = _voiced(1.0)
    x = torch.cat([x, x[:123]])  # a partial last frame
    codes, audio = _stream(port, x, 16, [320, 17, 700])
    offline = port.encode(x[None, None], 16)
    ref = port.decode(offline)
    assert codes.shape == offline.shape and audio.shape == ref.shape
    # this signal has int8 near-ties in both paths (measured here: 97.9 % of codes equal,
    # decoded SNR 38 dB, the eager path the same; on other signals the plan is bit-exact)
    assert float((codes == offline).float().mean()) >= 0.95
    snr = 10 * torch.log10(ref.square().sum() / (audio - ref).square().sum().clamp_min(1e-20))
    assert float(snr) > 30


def test_without_numba_the_eager_modules_serve(port: LyraSoundStream,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qsp, "AVAILABLE", False)
    assert not StreamingEncoder(port, 16).plans and not StreamingDecoder(port).plans
    with pytest.raises(RuntimeError, match="fused kernels unavailable"):
        StreamingEncoder(port, 16, fused=True)
    enc = StreamingEncoder(port, 16)
    assert enc.push(torch.zeros(640)).shape == (1, 16, 2)
    assert "plan_encoder" not in enc.state


@needs_numba
def test_sequential_rvq_is_the_quantizers_own_arithmetic() -> None:
    model = _small()
    rvq = qsp.SequentialRVQ(model.quantizer)
    z = torch.randn(1, 8, 300) * 0.5
    codes = model.quantizer.encode(z, 6)
    assert float((rvq.encode(z[0].T, 6).T[None] == codes).float().mean()) >= 0.99
    assert torch.equal(rvq.decode(codes), model.quantizer.decode(codes).transpose(1, 2))
    with pytest.raises(ValueError, match="out of range"):
        rvq.decode(torch.full((1, 2, 3), 16))
    with pytest.raises(ValueError, match="n_q"):
        rvq.encode(z[0].T, 7)


@needs_numba
def test_plan_rejects_what_it_cannot_run() -> None:
    model = _small()
    plan = qsp.QuantizedStreamPlan(model.decoder, 1, 8)
    with pytest.raises(ValueError, match="expected"):
        plan.step(torch.zeros(1, 1, 7), plan.new_state())
    with pytest.raises(TypeError, match="cannot run"):
        qsp.QuantizedStreamPlan(torch.nn.Sequential(torch.nn.Linear(2, 2)), 1, 2)
    enc = StreamingEncoder(model, 2)
    enc.push(torch.zeros(1, 640))
    with pytest.raises(ValueError, match="batch size"):
        enc.push(torch.zeros(2, 640))
    dec = StreamingDecoder(model)
    with pytest.raises(ValueError, match="out of range"):  # never read outside the codebooks
        dec.push(torch.full((1, 2, 1), 16))
    assert dec.push(torch.zeros(1, 2, 3, dtype=torch.long)).shape == (1, 1, 960)
