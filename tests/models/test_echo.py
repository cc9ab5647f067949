"""EchoCanceller: parameter count, shapes, causality, streaming == offline, training."""

import math

import pytest
import torch

from audiofcn.aec.task import EchoCancellerTask
from audiofcn.models import load_model
from audiofcn.models.echo import EchoCanceller, EchoCancellerConfig

TINY = EchoCancellerConfig(encoder_channels=(4, 8), bottleneck_channels=12, growth=6,
                           layers_per_block=3, num_blocks=1)


def test_default_parameter_count_is_paper_size():
    model = EchoCanceller()
    n = model.num_parameters()
    print(f"EchoCanceller default: {n} parameters")
    assert abs(n - 354_000) / 354_000 < 0.02
    assert model.algorithmic_latency_ms <= 20.0
    echo_only = EchoCanceller(EchoCancellerConfig(masks="echo"))
    assert echo_only.num_parameters() < n and "noise" not in echo_only.decoders


def test_forward_shapes_and_mask_cascade():
    torch.manual_seed(0)
    model = EchoCanceller(TINY).eval()
    mic, ref = torch.randn(2, 4000), torch.randn(2, 4000)
    with torch.no_grad():
        out = model(model.stft(mic), model.stft(ref))
        y = model.enhance(mic, ref)
    f, t = 161, 1 + 4000 // 160
    for k in ("echo_mask", "noise_mask", "near_noisy", "near"):
        assert out[k].shape == (2, f, t) and out[k].is_complex()
    torch.testing.assert_close(out["near"], out["noise_mask"] * out["echo_mask"]
                               * model.stft(mic))
    assert y.shape == mic.shape
    with pytest.raises(ValueError):
        model.enhance(mic, ref[:, :100])


def test_causal_output_ignores_the_future():
    torch.manual_seed(1)
    model = EchoCanceller(TINY).eval()
    mic, ref = torch.randn(1, 8000), torch.randn(1, 8000)
    mic2, ref2 = mic.clone(), ref.clone()
    mic2[:, 5000:] = torch.randn(1, 3000)
    ref2[:, 5000:] = torch.randn(1, 3000)
    with torch.no_grad():
        a, b = model.enhance(mic, ref), model.enhance(mic2, ref2)
    # output sample n depends on input samples < n + n_fft at most: the algorithmic latency
    lim = 5000 - model.config.stft.n_fft
    torch.testing.assert_close(a[:, :lim], b[:, :lim])
    assert not torch.allclose(a[:, 5000:], b[:, 5000:])


@pytest.mark.parametrize("chunk", [160, 37])
def test_streaming_equals_offline(chunk):
    torch.manual_seed(2)
    model = EchoCanceller(TINY)
    # non-trivial BatchNorm statistics so that the check covers them
    model.train()
    with torch.no_grad():
        model.enhance(torch.randn(4, 3200), torch.randn(4, 3200))
    model.eval()
    n = 4800
    mic, ref = torch.randn(n), torch.randn(n)
    with torch.no_grad():
        offline = model.enhance(mic[None], ref[None])[0]
    d = model.output_delay if chunk % model.hop_length == 0 else model.config.stft.n_fft - 1
    stream_obj = model.open_stream(delay=d)
    outs = [stream_obj.process(mic[i:i + chunk], ref[i:i + chunk]) for i in range(0, n, chunk)]
    stream = torch.cat(outs)
    assert [o.shape[0] for o in outs] == [min(chunk, n - i) for i in range(0, n, chunk)]
    assert torch.all(stream[:d] == 0)
    torch.testing.assert_close(stream[d:], offline[: n - d], rtol=1e-4, atol=1e-5)
    # the model's own default stream (hop-sized frames), reset in between
    for _ in range(2):
        model.reset_stream()
        again = torch.cat([model.process(mic[i:i + 160], ref[i:i + 160])
                           for i in range(0, n, 160)])
        torch.testing.assert_close(again[model.output_delay:],
                                   offline[: n - model.output_delay], rtol=1e-4, atol=1e-5)


def _with_batchnorm_statistics(model: EchoCanceller) -> EchoCanceller:
    model.train()
    with torch.no_grad():
        model.enhance(torch.randn(4, 3200), torch.randn(4, 3200))
    return model.eval()


def test_batched_stream_of_several_hops_per_call_equals_offline():
    torch.manual_seed(5)
    model = _with_batchnorm_statistics(EchoCanceller(TINY))
    n, chunk = 4800, 480  # three hops per call, two independent signals
    mic, ref = torch.randn(2, n), torch.randn(2, n)
    with torch.no_grad():
        offline = model.enhance(mic, ref)
    stream = model.open_stream()
    out = torch.cat([stream.process(mic[:, i:i + chunk], ref[:, i:i + chunk])
                     for i in range(0, n, chunk)], dim=-1)
    d = model.output_delay
    assert out.shape == (2, n) and torch.all(out[:, :d] == 0)
    torch.testing.assert_close(out[:, d:], offline[:, :n - d], rtol=1e-4, atol=1e-5)


def test_new_stream_uses_changed_weights():
    torch.manual_seed(6)
    model = _with_batchnorm_statistics(EchoCanceller(TINY))
    mic, ref = torch.randn(1600), torch.randn(1600)

    def streamed() -> torch.Tensor:
        s = model.open_stream()
        return torch.cat([s.process(mic[i:i + 160], ref[i:i + 160])
                          for i in range(0, 1600, 160)])

    before = streamed()
    with torch.no_grad():
        model.decoders["noise"].unfold.bias_real.add_(0.5)  # in place, as an optimizer step
        offline = model.enhance(mic[None], ref[None])[0]
    after = streamed()
    assert not torch.allclose(before, after)
    d = model.output_delay
    torch.testing.assert_close(after[d:], offline[:1600 - d], rtol=1e-4, atol=1e-5)


def test_latency_is_one_frame_without_lookahead():
    model = EchoCanceller()
    sr, cfg = model.config.sample_rate, model.config.stft
    # a sample waits for the rest of its hop, then for the output delay: one STFT frame
    assert model.output_delay + model.hop_length == cfg.n_fft
    assert model.algorithmic_latency_ms == 1000.0 * cfg.n_fft / sr <= 20.0


def test_process_needs_eval_and_matching_frames():
    model = EchoCanceller(TINY)
    with pytest.raises(RuntimeError):
        model.process(torch.zeros(160), torch.zeros(160))
    model.eval()
    with pytest.raises(ValueError):
        model.process(torch.zeros(160), torch.zeros(100))
    model.reset_stream()
    with pytest.raises(ValueError, match="multiples of the hop"):
        for _ in range(10):
            model.process(torch.zeros(37), torch.zeros(37))


def test_save_load_round_trip(tmp_path):
    model = EchoCanceller(TINY).eval()
    path = model.save_pretrained(tmp_path / "aec.safetensors")
    again = load_model(path)
    assert isinstance(again, EchoCanceller) and again.config == model.config
    x, r = torch.randn(1, 1600), torch.randn(1, 1600)
    with torch.no_grad():
        torch.testing.assert_close(again.enhance(x, r), model.enhance(x, r))


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(3)
    model = EchoCanceller(TINY)
    task = EchoCancellerTask()
    t = torch.arange(8000) / 16000
    near = 0.3 * torch.sin(2 * math.pi * 440 * t) * (t > 0.25)
    farend = torch.randn(8000) * 0.2
    echo = 0.5 * torch.nn.functional.pad(farend, (40, 0))[:8000]
    noise = 0.01 * torch.randn(8000)
    batch = {"mic": (near + echo + noise)[None].repeat(2, 1), "ref": farend[None].repeat(2, 1),
             "near": near[None].repeat(2, 1), "noise": noise[None].repeat(2, 1)}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, logs = task.training_step(model, batch)
        assert set(logs) == {"final", "stage"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]


def test_asymmetric_loss_penalises_suppression_more():
    from audiofcn.aec.task import compressed_spectral_loss

    ref = torch.randn(1, 9, 7, dtype=torch.complex64)
    under, over = 0.5 * ref, 1.5 * ref
    sym = compressed_spectral_loss(under, ref), compressed_spectral_loss(over, ref)
    asym = (compressed_spectral_loss(under, ref, asymmetric=1.0),
            compressed_spectral_loss(over, ref, asymmetric=1.0))
    assert asym[1] == sym[1]  # over-estimates are not penalised extra
    assert asym[0] > sym[0]
    assert compressed_spectral_loss(ref, ref, asymmetric=1.0) < 1e-10


def test_talker_si_sdr_and_the_sisdr_loss_term():
    from audiofcn.aec.task import talker_si_sdr

    torch.manual_seed(0)
    ref = torch.randn(3, 4000)
    ref[2] = 0.0  # far-end single talk: no near-end talker, no SI-SDR
    est = ref + 0.1 * torch.randn(3, 4000)
    # ~20 dB for the two talkers; the silent third example must not drag the mean down
    assert 19.0 < float(talker_si_sdr(est, ref)) < 21.0
    assert float(talker_si_sdr(5.0 * est, ref)) == pytest.approx(float(talker_si_sdr(est, ref)),
                                                                  abs=1e-3)  # scale-invariant
    assert float(talker_si_sdr(est, torch.zeros_like(ref))) == 0.0
    model = EchoCanceller(TINY)
    batch = {"mic": torch.randn(2, 3200), "ref": torch.randn(2, 3200),
             "near": torch.randn(2, 3200), "noise": 0.1 * torch.randn(2, 3200)}
    plain = EchoCancellerTask()._losses(model, batch)
    with_term = EchoCancellerTask(sisdr_weight=0.01)._losses(model, batch)
    assert "sisdr" not in plain
    torch.testing.assert_close(with_term["loss"], plain["loss"] - 0.01 * with_term["sisdr"])
    _, logs = EchoCancellerTask(sisdr_weight=0.01).training_step(model, batch)
    assert set(logs) == {"final", "stage", "sisdr"}


# --- opt-in full-resolution refinement (refine_channels > 0) ------------------------------

REFINE = EchoCancellerConfig(**{**TINY.__dict__, "refine_channels": 3,
                                "refine_dilations": (1, 2), "refine_kernel": 3})
REFINE_HISTORY = EchoCancellerConfig(**{**REFINE.__dict__, "refine_history": 4})


def _refined(seed: int, config: EchoCancellerConfig = REFINE) -> EchoCanceller:
    """A refined TINY model whose refinement output is not zero (it starts at zero)."""
    torch.manual_seed(seed)
    model = EchoCanceller(config)
    with torch.no_grad():
        for dec in model.decoders.values():
            dec.refine.out.weight_real.normal_(std=0.3)
            dec.refine.out.weight_imag.normal_(std=0.3)
    return _with_batchnorm_statistics(model)


def test_refinement_is_opt_in_and_starts_from_the_coarse_mask():
    assert all(d.refine is None for d in EchoCanceller().decoders.values())
    torch.manual_seed(7)
    coarse = EchoCanceller(TINY).eval()
    refined = EchoCanceller(REFINE).eval()
    missing, unexpected = refined.load_state_dict(coarse.state_dict(), strict=False)
    assert not unexpected and missing and all(".refine." in k for k in missing)
    assert refined.num_parameters() > coarse.num_parameters()
    mic, ref = torch.randn(2, 4000), torch.randn(2, 4000)
    with torch.no_grad():
        a = coarse(coarse.stft(mic), coarse.stft(ref))
        b = refined(refined.stft(mic), refined.stft(ref))
    for k in ("echo_mask", "noise_mask", "near_noisy", "near"):
        assert b[k].shape == (2, 161, 26) and b[k].is_complex()
        torch.testing.assert_close(b[k], a[k])  # zero-initialised output conv


def test_refinement_is_per_bin_and_per_frame():
    # one input bin of one frame moves the refined mask only in that frame, within the
    # refinement's frequency reach (sum of d*(k-1)/2 over its convs: 1 + 2 + 1 = 4 bins)
    refine = _refined(8).decoders["echo"].refine
    coarse, feats = torch.randn(1, 2, 161, 30), torch.randn(1, 4, 161, 30)
    feats2 = feats.clone()
    feats2[:, :, 80, 20] += 1.0
    with torch.no_grad():
        diff = (refine(coarse, feats) - refine(coarse, feats2)).abs().amax(dim=1)[0]
    changed = (diff > 0).nonzero().tolist()
    assert changed and all(t == 20 and 76 <= f <= 84 for f, t in changed)
    assert diff[80, 20] > 0


def test_refinement_history_reads_the_past_reference_frames_of_each_bin():
    # a reference bin at frame 20 reaches frames 20..23 (history 4) and no earlier frame;
    # with history 1 only frame 20
    for config, frames in ((REFINE, {20}), (REFINE_HISTORY, {20, 21, 22, 23})):
        refine = _refined(8, config).decoders["echo"].refine
        coarse, feats = torch.randn(1, 2, 161, 30), torch.randn(1, 4, 161, 30)
        feats2 = feats.clone()
        feats2[:, 1, 80, 20] += 1.0  # reference, real part
        with torch.no_grad():
            diff = (refine(coarse, feats) - refine(coarse, feats2)).abs().amax(dim=1)[0]
        changed = (diff > 0).nonzero().tolist()
        assert {t for _, t in changed} == frames
        assert all(76 <= f <= 84 for f, _ in changed)
    assert EchoCanceller(REFINE_HISTORY).num_parameters() > EchoCanceller(REFINE).num_parameters()


@pytest.mark.parametrize("config", [REFINE, REFINE_HISTORY], ids=["frame", "history"])
@pytest.mark.parametrize(("chunk", "batch"), [(160, 1), (480, 2), (37, 1)])
def test_refined_streaming_equals_offline(chunk, batch, config):
    model = _refined(9, config)
    n = 4800
    mic, ref = torch.randn(batch, n), torch.randn(batch, n)
    with torch.no_grad():
        offline = model.enhance(mic, ref)
    d = model.output_delay if chunk % model.hop_length == 0 else model.config.stft.n_fft - 1
    stream = model.open_stream(delay=d)
    out = torch.cat([stream.process(mic[:, i:i + chunk], ref[:, i:i + chunk])
                     for i in range(0, n, chunk)], dim=-1)
    torch.testing.assert_close(out[:, d:], offline[:, :n - d], rtol=1e-4, atol=1e-5)
    # and the layer-by-layer streaming path
    state: dict = {}
    with torch.no_grad():
        ms, rs = model.stft(mic), model.stft(ref)
        full = model(ms, rs)["near"]
        parts = [model.forward_stream(ms[..., t:t + 3], rs[..., t:t + 3], state)["near"]
                 for t in range(0, ms.shape[-1], 3)]
    torch.testing.assert_close(torch.cat(parts, -1), full, rtol=1e-4, atol=1e-5)


def test_refinement_gets_gradients_and_trains():
    model = _refined(10, REFINE_HISTORY).train()
    batch = {"mic": torch.randn(2, 3200), "ref": torch.randn(2, 3200),
             "near": torch.randn(2, 3200), "noise": 0.1 * torch.randn(2, 3200)}
    loss, _ = EchoCancellerTask().training_step(model, batch)
    loss.backward()
    for dec in model.decoders.values():
        for name, p in dec.refine.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # from the zero start only the output conv has a gradient; one step moves the rest
    zero = EchoCanceller(REFINE).train()
    loss, _ = EchoCancellerTask().training_step(zero, batch)
    loss.backward()
    assert zero.decoders["echo"].refine.out.weight_real.grad.abs().sum() > 0
    assert zero.decoders["echo"].refine.convs[0].weight_real.grad.abs().sum() == 0
