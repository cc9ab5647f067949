"""The port of Lyra v2's SoundStream against the TFLite original.

Always: the shipped weights against reference outputs the converter stored once from the TFLite
original (``fixtures/lyra_reference.safetensors``: 0.4 s of Lyra's ``sample1_16kHz.wav``, run by
TFLite's reference kernels). Where ``ai-edge-litert`` and a copy of google/lyra are present
(``LYRA_ROOT``, default ``~/data/lyra``): every int8 op of the graphs against the live
interpreter, and the port end to end on test-made audio and Lyra's two test clips.

The last encoder block and the first two decoder blocks of the original run in int8. With
``arithmetic="tflite"`` the port computes them with the integer arithmetic of TFLite's reference
kernels (and the float layers before them in those kernels' order), with ``"xnnpack"`` with
XNNPACK's (the delegate Lyra's C++ uses): identical latents and codes to the respective
back-end. The default ``"float"`` rounds once in float and agrees with either back-end about as
often as the two back-ends agree with each other (printed, bounded below by that spread).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from audiofcn.codec import load_codec
from audiofcn.models.lyra_soundstream import LyraSoundStream
from audiofcn.nn.quantized_causal import int8_arithmetic

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "lyra_reference.safetensors"
RECIPE = HERE.parents[1] / "recipes" / "codec" / "convert_lyra.py"


def snr_db(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(10 * np.log10((reference ** 2).sum() / ((estimate - reference) ** 2).sum()))


@pytest.fixture(scope="module")
def port() -> LyraSoundStream:
    model = load_codec()
    assert isinstance(model, LyraSoundStream)
    return model


def test_shipped_port_matches_stored_tflite_outputs(port: LyraSoundStream) -> None:
    ref = load_file(str(FIXTURE))
    x = torch.from_numpy(ref["input"].astype(np.float32))[None, None]
    codes = torch.from_numpy(ref["codes"].T.astype(np.int64))[None]  # (1, 46, frames)
    assert port.inference_arithmetic() == "float"  # the default (about 2x faster)
    with torch.no_grad(), int8_arithmetic("tflite"):
        latents = port.embed(x)[0].T.numpy()
    with torch.no_grad(), int8_arithmetic("float"):
        latents_float = port.embed(x)[0].T.numpy()
    rvq = port.quantizer.encode(torch.from_numpy(ref["latents"].T.copy())[None], 46)
    assert torch.equal(rvq, codes)  # residual VQ: exact on the original's latents
    # Exact arithmetic: the reference kernels' latents bit for bit, so identical codes.
    assert np.array_equal(latents, ref["latents"])
    for n_q in (16, 30, 46):
        assert torch.equal(port.encode(x, n_q, arithmetic="tflite"), codes[:, :n_q]), n_q
    audio = port.decode(codes, arithmetic="tflite")[0, 0].numpy()
    dec_max = float(np.abs(audio - ref["audio"]).max())
    assert dec_max < 1e-5, dec_max  # measured 6e-7 (float layers after the int8 blocks)
    # XNNPACK (Lyra's runtime) by the port's arithmetic="xnnpack": the same, against XNNPACK.
    codes_x = torch.from_numpy(ref["codes_xnnpack"].T.astype(np.int64))[None]
    with torch.no_grad(), int8_arithmetic("xnnpack"):
        assert np.array_equal(port.embed(x)[0].T.numpy(), ref["latents_xnnpack"])
    for n_q in (16, 30, 46):
        assert torch.equal(port.encode(x, n_q, arithmetic="xnnpack"), codes_x[:, :n_q]), n_q
    audio_x = port.decode(codes_x, arithmetic="xnnpack")[0, 0].numpy()
    assert float(np.abs(audio_x - ref["audio_xnnpack"]).max()) < 1e-5
    # Float (training) arithmetic: within one rounding step per int8 layer, not exact.
    audio_f = port.decode(codes, arithmetic="float")[0, 0].numpy()
    own_f = port.encode(x, 16, arithmetic="float")[0]
    lat_snr, dec_snr = snr_db(latents_float, ref["latents"]), snr_db(audio_f, ref["audio"])
    agree = float((own_f == codes[0, :16]).float().mean())
    xnn = float((codes[0, :16] == torch.from_numpy(ref["codes_xnnpack"].T[:16].astype(np.int64))
                 ).float().mean())
    print(f"tflite arithmetic: latents identical, decoded max abs error {dec_max:.1e}; float: "
          f"latents SNR {lat_snr:.1f} dB, decoded SNR {dec_snr:.1f} dB, codes equal at "
          f"3.2 kbps {agree:.3f}; TFLite XNNPACK vs reference kernels {xnn:.3f} of codes")
    assert lat_snr > 23.0 and dec_snr > 23.0  # measured 26.5 dB, 27.7 dB
    assert agree > 0.7  # measured 0.81


def _test_signal(seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(np.pi * t))
    noise = np.random.default_rng(0).standard_normal(t.size) * 0.01
    x = 0.2 * voice / np.abs(voice).max() + noise
    return x[: len(x) // 320 * 320].astype(np.float32)


def _lyra_root() -> Path | None:
    root = Path(os.environ.get("LYRA_ROOT", "~/data/lyra")).expanduser()
    return root if (root / "lyra" / "model_coeffs" / "lyragan.tflite").exists() else None


def _live() -> tuple[object, Path]:
    """The converter module (its TFLite runner) and the model_coeffs folder, or skip."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("ai-edge-litert not installed (pip install 'audiofcn[convert]')")
    root = _lyra_root()
    if root is None:
        pytest.skip("no copy of google/lyra (set LYRA_ROOT)")
    spec = importlib.util.spec_from_file_location("convert_lyra", RECIPE)
    conv = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["convert_lyra"] = conv  # its dataclasses look their module up
    spec.loader.exec_module(conv)
    return conv, root / "lyra" / "model_coeffs"


def _op_output(op, g, get) -> np.ndarray | None:  # noqa: ANN001
    """One int8-related op of a Lyra graph recomputed by audiofcn.nn.tflite_int8 from the
    interpreter's own input tensors (None for ops without arithmetic)."""
    from audiofcn.nn import tflite_int8 as K

    def grid(t):  # noqa: ANN001, ANN202
        return float(t.scale[0]), int(t.zero_point[0])

    def ints(i: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(get(i)).astype(np.int64))

    t, out = g.tensors, g.tensors[op.outputs[0]] if op.outputs else None
    f32 = torch.float32
    if op.kind == "QUANTIZE" and t[op.inputs[0]].dtype == "float32":
        s, z = grid(out)
        return K.quantize(torch.from_numpy(get(op.inputs[0])), torch.tensor(s, dtype=f32),
                          torch.tensor(z)).numpy()
    if op.kind == "DEQUANTIZE":
        s, z = grid(t[op.inputs[0]])
        return K.dequantize(ints(op.inputs[0]), torch.tensor(s, dtype=f32),
                            torch.tensor(z)).numpy()
    if out is None or out.dtype != "int8":
        return None
    if op.kind == "LEAKY_RELU":
        return K.leaky_relu(ints(op.inputs[0]), *grid(t[op.inputs[0]]), *grid(out),
                            op.options["alpha"]).numpy()
    if op.kind == "ADD":
        return K.add(ints(op.inputs[0]), *grid(t[op.inputs[0]]), ints(op.inputs[1]),
                     *grid(t[op.inputs[1]]), *grid(out)).numpy()
    if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
        return None
    x_i, w_i, b_i = (op.inputs[2], op.inputs[1], op.inputs[3]) if op.kind == "TRANSPOSE_CONV" \
        else op.inputs[:3]
    w, si, zi = t[w_i], *grid(t[x_i])
    x = ints(x_i)[0, :, 0, :].T[None] - zi  # NHWC (1, T, 1, C) -> (1, C, T)
    wq = torch.from_numpy(w.data.astype(np.int64))
    if op.kind == "CONV_2D":
        wq = wq[:, :, 0, :].permute(0, 2, 1)
        acc = K.conv1d_acc(x, wq, op.options["strideH"], op.options["dilationHFactor"],
                           x.shape[1] // wq.shape[1])
    elif op.kind == "DEPTHWISE_CONV_2D":
        wq = wq[0, :, 0, :].T[:, None, :]
        acc = K.conv1d_acc(x, wq, 1, op.options["dilationHFactor"], x.shape[1])
    else:
        acc = K.conv_transpose1d_acc(x, wq[:, :, 0, :].permute(2, 0, 1), op.options["strideH"])
    acc = acc + torch.from_numpy(t[b_i].data.astype(np.int64))[:, None]
    ws = torch.from_numpy(np.broadcast_to(w.scale, (acc.shape[1],)).astype(np.float32))
    so, zo = grid(out)
    m, sh = K.conv_multipliers(si, ws, torch.full_like(ws, so))
    return K.requantize(acc, m[:, None], sh[:, None], torch.tensor(zo))[0].T.numpy()


@pytest.mark.slow
def test_int8_ops_match_the_reference_kernels() -> None:
    """Every QUANTIZE, DEQUANTIZE and int8 LEAKY_RELU / ADD / CONV_2D / DEPTHWISE_CONV_2D /
    TRANSPOSE_CONV of the encoder and decoder graphs, fed the interpreter's own inputs
    (reference kernels, all tensors kept), gives the interpreter's output bit for bit."""
    conv, coeffs = _live()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    x = _test_signal(0.2)
    rng = np.random.default_rng(0)
    for name in ("soundstream_encoder", "lyragan"):
        g = conv.read_tflite(coeffs / f"{name}.tflite")[0]
        it = Interpreter(model_path=str(coeffs / f"{name}.tflite"),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                         experimental_preserve_all_tensors=True)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        checked = set()
        for f in range(len(x) // 320):
            it.set_tensor(inp["index"], x[None, f * 320:(f + 1) * 320] if name[0] == "s" else
                          (rng.standard_normal(inp["shape"]) * 3).astype(np.float32))
            it.invoke()
            for i, op in enumerate(g.ops):
                got = _op_output(op, g, it.get_tensor)
                if got is not None:
                    want = it.get_tensor(op.outputs[0])
                    assert np.array_equal(got.reshape(want.shape), want), (name, i, op.kind)
                    checked.add(i)
        print(f"{name}: {len(checked)} ops bit-exact")
        assert len(checked) > 30


@pytest.mark.slow
def test_port_against_live_tflite(port: LyraSoundStream) -> None:
    conv, coeffs = _live()
    import soundfile as sf

    signals = {"test-made": _test_signal()}
    for name in ("sample1_16kHz", "sample2_16kHz"):
        x, _ = sf.read(str(coeffs.parent / "testdata" / f"{name}.wav"), dtype="float32")
        signals[name] = x[: len(x) // 320 * 320]
    for name, x in signals.items():
        audio_in = torch.from_numpy(x)[None, None]
        # the port's arithmetic -> the TFLite kernels it reproduces: the reference kernels,
        # and XNNPACK (TFLite's default back-end, as Lyra's C++ runs it). Measured: codes
        # 100 % identical; decoded max abs error <= 2.5e-6
        for arithmetic, kernels in (("tflite", "reference"), ("xnnpack", "xnnpack")):
            for n_q in (16, 30, 46):
                ref = conv.tflite_reference(coeffs, x, n_q, kernels=kernels)
                codes = port.encode(audio_in, n_q, arithmetic=arithmetic)[0].T.numpy()
                frames = float((codes == ref["codes"]).all(1).mean())
                audio = port.decode(torch.from_numpy(ref["codes"].T.astype(np.int64))[None],
                                    arithmetic=arithmetic)
                err = float(np.abs(audio[0, 0].numpy() - ref["audio"]).max())
                print(f"{name} n_q={n_q}: codes identical to TFLite's {kernels} kernels on "
                      f"{100 * frames:.1f} % of frames; decoded max abs error {err:.1e}")
                assert frames >= 0.99, (name, n_q, kernels)
                assert err < 1e-3, (name, n_q, kernels)
        # The float arithmetic is as close to XNNPACK as TFLite's reference kernels are.
        flt = port.encode(audio_in, 30, arithmetic="float")[0].T.numpy()
        ref30 = port.encode(audio_in, 30, arithmetic="tflite")[0].T.numpy()
        xnn30 = conv.tflite_reference(coeffs, x, 30)["codes"]
        f_ref, f_float = (float((c == xnn30).mean()) for c in (ref30, flt))
        print(f"{name} 6 kbps vs XNNPACK: codes equal, reference kernels {f_ref:.3f}, "
              f"port float {f_float:.3f}")
        assert f_float > f_ref - 0.1, name


@pytest.mark.parametrize("arithmetic", ["tflite", "xnnpack", "float"])
def test_streaming_equals_offline(port: LyraSoundStream, arithmetic: str) -> None:
    from audiofcn.codec import StreamingDecoder, StreamingEncoder

    x = torch.from_numpy(_test_signal(0.8))
    x = torch.cat([x, x[:123]])  # a partial last frame
    port.arithmetic = arithmetic
    try:
        offline = port.encode(x[None, None], 16)
        enc = StreamingEncoder(port, 16)
        parts, i = [], 0
        for size in [1, 319, 700, 2000, 50, 10_000]:
            parts.append(enc.push(x[i:i + size]))
            i += size
        parts.append(enc.flush())
        streamed = torch.cat(parts, dim=-1)
        dec = StreamingDecoder(port)
        out = torch.cat([dec.push(offline[..., a:b]) for a, b in [(0, 1), (1, 4), (4, 100)]], -1)
        ref = port.decode(offline)
    finally:
        port.arithmetic = "float"
    assert streamed.shape == offline.shape and out.shape == ref.shape
    err = float((out - ref).abs().max())
    if arithmetic != "float":
        # exact arithmetic does not depend on the chunking: identical codes; the decoder's
        # float layers after the int8 blocks differ by float rounding only
        assert torch.equal(streamed, offline)
        assert err < 1e-5, err
        return
    assert float((streamed == offline).float().mean()) >= 0.99
    # int8-rounded layers: float-rounding differences between chunkings can move a value by
    # one int8 step, so the outputs agree closely rather than bit for bit
    snr = 10 * torch.log10(ref.square().sum() / (out - ref).square().sum())
    assert float(snr) > 40 and err < 0.02


def test_gradients_reach_every_parameter() -> None:
    # The shipped weights (a copy: training mode moves the EMA codebooks). Rounded layers pass
    # gradients straight through.
    torch.manual_seed(0)
    model = load_codec().train()
    x = torch.randn(2, 1, 1280) * 0.1
    out = model(x)
    loss = (out["audio"] - x).abs().mean() + out["commit_loss"]
    loss.backward()
    dead = [n for n, p in model.named_parameters()
            if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, dead


def test_bitrates_and_checkpoint_roundtrip(port: LyraSoundStream, tmp_path: Path) -> None:
    assert [port.n_q_for_kbps(k) for k in (3.2, 6, 9.2)] == [16, 30, 46]
    with pytest.raises(ValueError):
        port.n_q_for_kbps(10)
    with pytest.raises(ValueError):
        port.n_q_for_kbps(6.1)
    path = port.save_pretrained(tmp_path / "lyra.safetensors")
    again = LyraSoundStream.from_pretrained(path)
    x = torch.from_numpy(_test_signal(0.2))[None, None]
    assert torch.equal(again.encode(x, 46), port.encode(x, 46))
