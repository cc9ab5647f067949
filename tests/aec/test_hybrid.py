"""Hybrid input plumbing: linear stage -> network with [mic, linear, echo estimate, ref]."""

import numpy as np
import pytest
import torch

from audiofcn.aec.hybrid import HybridCanceller, WithLinearStage, hybrid_spectra, linear_inputs
from audiofcn.aec.task import EchoCancellerTask
from audiofcn.models.echo import EchoCanceller, EchoCancellerConfig

HYBRID = EchoCancellerConfig(encoder_channels=(4, 8), bottleneck_channels=12, growth=6,
                             layers_per_block=3, num_blocks=1, hybrid=True)
# the shipped hybrid's layout in small: + the per-bin refinement (with a reference history)
PER_BIN = EchoCancellerConfig(**{**HYBRID.__dict__, "refine_channels": 3,
                                 "refine_dilations": (1, 2), "refine_history": 3})


def _trained_statistics(model: EchoCanceller) -> EchoCanceller:
    """Non-trivial BatchNorm statistics (and a refinement that is not zero), so that the
    streaming check covers them."""
    with torch.no_grad():
        for dec in model.decoders.values():
            if dec.refine is not None:
                for t in (dec.refine.out.weight_real, dec.refine.out.weight_imag):
                    t.normal_(0, 0.3)
    model.train()
    spec = [model.stft(torch.randn(4, 3200)) for _ in range(4)]
    with torch.no_grad():
        model(*spec[:4 if model.config.hybrid else 2])
    return model.eval()


def _echo_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = 0.1 * rng.standard_normal(n)
    path = np.zeros(400)
    path[80:] = 0.3 * rng.standard_normal(320) * np.exp(-np.arange(320) / 60)
    mic = np.convolve(ref, path)[:n] + 0.02 * rng.standard_normal(n)
    return mic.astype(np.float32), ref.astype(np.float32)


def test_hybrid_forward_takes_four_spectra_and_masks_the_linear_output() -> None:
    torch.manual_seed(0)
    model = EchoCanceller(HYBRID).eval()
    mic, ref, lin, est = (model.stft(torch.randn(2, 1600)) for _ in range(4))
    with torch.no_grad():
        out = model(mic, ref, lin, est)
    assert out["near"].shape == mic.shape
    torch.testing.assert_close(out["near_noisy"], out["echo_mask"] * lin)
    with pytest.raises(ValueError, match="linear output"):
        model(mic, ref)
    with pytest.raises(ValueError, match="non-hybrid"):
        EchoCanceller(EchoCancellerConfig(**{**HYBRID.__dict__, "hybrid": False}))(
            mic, ref, lin, est)
    with pytest.raises(ValueError, match="HybridCanceller"):
        model.process(torch.zeros(160), torch.zeros(160))  # the linear stage must run first
    assert model.encoder[0].in_channels == 4  # mic, linear output, echo estimate, ref


@pytest.mark.parametrize("config", [HYBRID, PER_BIN], ids=["coarse", "per_bin"])
def test_hybrid_streaming_equals_offline(config: EchoCancellerConfig) -> None:
    torch.manual_seed(1)
    model = _trained_statistics(EchoCanceller(config))
    mic, ref = _echo_pair(4800, 0)
    canceller = HybridCanceller(model)
    offline = canceller.enhance(mic, ref)
    pieces, i = [], 0
    for hops in [1, 2, 1, 3, 1, 4, 1, 2, 3, 2, 1, 5, 4]:
        pieces.append(canceller.process(mic[i:i + 160 * hops], ref[i:i + 160 * hops]))
        i += 160 * hops
    assert i == len(mic)
    stream = np.concatenate(pieces)
    d = canceller.output_delay
    assert d == 160 and np.all(stream[:d] == 0)
    np.testing.assert_allclose(stream[d:], offline[:len(mic) - d], rtol=1e-4, atol=1e-5)
    canceller.reset_stream()  # a new call starts from scratch
    again = np.concatenate([canceller.process(mic[j:j + 160], ref[j:j + 160])
                            for j in range(0, len(mic), 160)])
    np.testing.assert_allclose(again, stream, rtol=1e-5, atol=1e-6)


def test_training_batches_carry_the_linear_stage_and_the_task_uses_it() -> None:
    torch.manual_seed(2)
    mic, ref = _echo_pair(8000, 1)
    near = np.zeros(8000, np.float32)
    examples = [{"mic": torch.from_numpy(mic), "ref": torch.from_numpy(ref),
                 "near": torch.from_numpy(near), "noise": torch.zeros(8000)}]
    data = WithLinearStage(examples)
    ex = data[0]
    assert len(data) == 1 and set(ex) >= {"linear", "echo_est"}
    np.testing.assert_allclose(ex["linear"].numpy(), linear_inputs(mic, ref)["linear"])
    np.testing.assert_allclose((ex["linear"] + ex["echo_est"]).numpy(), mic, atol=1e-5)
    batch = {k: v[None] for k, v in ex.items()}
    model = EchoCanceller(HYBRID)
    assert set(hybrid_spectra(model, batch)) == {"linear_spec", "echo_spec"}
    loss, logs = EchoCancellerTask().training_step(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.encoder[0].weight_real.grad.abs().sum() > 0
    assert hybrid_spectra(EchoCanceller(EchoCancellerConfig(**{**HYBRID.__dict__,
                                                               "hybrid": False})), batch) == {}


def test_the_linear_stage_settings_travel_with_the_model(tmp_path) -> None:
    from audiofcn.models import load_model

    config = EchoCancellerConfig(**{**HYBRID.__dict__, "linear_stage": {"a": 0.999}})
    path = EchoCanceller(config).save_pretrained(tmp_path / "hybrid.safetensors")
    again = load_model(path).eval()
    assert again.config.linear_stage == {"a": 0.999}
    assert HybridCanceller(again).linear_config.a == 0.999
    assert HybridCanceller(EchoCanceller(HYBRID)).linear_config.a != 0.999  # the default


def test_keep_last_trains_on_the_converged_end() -> None:
    mic, ref = _echo_pair(16000, 2)
    examples = [{"mic": mic, "ref": ref, "near": np.zeros_like(mic), "snr": 3.0}]
    full = WithLinearStage(examples)[0]
    end = WithLinearStage(examples, keep_last=4000)[0]
    assert all(end[k].shape == (4000,) for k in ("mic", "ref", "near", "linear", "echo_est"))
    assert end["snr"] == 3.0
    np.testing.assert_array_equal(end["linear"], full["linear"][-4000:])
    np.testing.assert_array_equal(end["mic"], mic[-4000:])


def test_per_bin_refinement_reads_all_four_inputs_and_its_frame_step_matches() -> None:
    torch.manual_seed(3)
    model = _trained_statistics(EchoCanceller(PER_BIN))
    assert model.decoders["echo"].refine.convs[0].in_channels == 5  # mask + 4 inputs
    specs = [model.stft(torch.randn(1, 1600)) for _ in range(4)]  # mic, ref, linear, echo
    with torch.no_grad():
        offline = model(*specs)["near"]
        base = model(specs[0], specs[1], specs[2], torch.zeros_like(specs[3]))["near"]
    assert (offline - base).abs().max() > 1e-4  # the echo estimate changes the output
    step = model.frame_step()
    state = step.initial_state(1)
    order = torch.stack([specs[0], specs[2], specs[3], specs[1]], dim=1)  # [mic, lin, est, ref]
    frames = [step.step(order[..., t], state) for t in range(order.shape[-1])]
    torch.testing.assert_close(torch.stack(frames, -1), offline, rtol=1e-4, atol=1e-5)


def test_hybrid_canceller_has_the_echo_canceller_interface(tmp_path) -> None:
    from audiofcn.cli.aec import cancel, load_canceller

    torch.manual_seed(4)
    path = _trained_statistics(EchoCanceller(PER_BIN)).save_pretrained(tmp_path / "h.safetensors")
    canceller = load_canceller(path)
    assert isinstance(canceller, HybridCanceller) and canceller.hop_length == 160
    assert canceller.algorithmic_latency_ms == 20.0 and canceller.config.hybrid
    mic, ref = (torch.from_numpy(x) for x in _echo_pair(3200, 5))
    offline = cancel(canceller, mic, ref)
    streamed = cancel(canceller, mic, ref, stream=True)
    assert isinstance(offline, torch.Tensor) and offline.shape == mic.shape
    torch.testing.assert_close(streamed, offline, rtol=1e-4, atol=1e-5)
    batch = canceller.enhance(torch.stack([mic, ref]), torch.stack([ref, mic]))
    torch.testing.assert_close(batch[0], offline, rtol=1e-5, atol=1e-6)


def test_an_end_to_end_model_initialises_a_hybrid_as_itself_on_the_linear_output(
        tmp_path) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes" / "aec"))
    from train import init_weights

    torch.manual_seed(6)
    e2e_config = EchoCancellerConfig(**{**HYBRID.__dict__, "hybrid": False})
    e2e = _trained_statistics(EchoCanceller(e2e_config))
    path = e2e.save_pretrained(tmp_path / "e2e.safetensors")
    hybrid = EchoCanceller(PER_BIN)
    init_weights(hybrid, path)
    hybrid.eval()
    mic, ref, lin, est = (hybrid.stft(torch.randn(1, 1600)) for _ in range(4))
    with torch.no_grad():
        torch.testing.assert_close(hybrid(mic, ref, lin, est)["near"], e2e(lin, ref)["near"],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stream", [False, True])
def test_audiofcn_aec_runs_a_hybrid_checkpoint_in_chunks(tmp_path, stream: bool) -> None:
    import soundfile as sf

    from audiofcn.cli.aec import cancel, load_canceller
    from audiofcn.cli.main import main

    torch.manual_seed(7)
    path = _trained_statistics(EchoCanceller(PER_BIN)).save_pretrained(tmp_path / "h.safetensors")
    mic, ref = _echo_pair(16000 + 37, 8)
    sf.write(tmp_path / "mic.wav", mic, 16000, subtype="FLOAT")
    sf.write(tmp_path / "ref.wav", ref, 16000, subtype="FLOAT")
    args = ["aec", "--mic", str(tmp_path / "mic.wav"), "--ref", str(tmp_path / "ref.wav"),
            "--model", str(path), "-o", str(tmp_path / "out.wav"), "--chunk-seconds", "0.3"]
    assert main(args + (["--stream"] if stream else [])) == 0
    got, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    want = cancel(load_canceller(path), torch.from_numpy(mic), torch.from_numpy(ref)).numpy()
    assert sr == 16000 and got.shape == mic.shape
    np.testing.assert_allclose(got, want, atol=2e-5)
