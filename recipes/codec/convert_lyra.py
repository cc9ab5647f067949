"""Convert Lyra v2's three TFLite graphs into one ``lyra_soundstream`` safetensors checkpoint.

    python recipes/codec/convert_lyra.py --lyra-root LYRA --out soundstream_lyra_16k.safetensors

``--lyra-root`` is a copy of google/lyra (Apache-2.0): the graphs are read from
``lyra/model_coeffs/{soundstream_encoder,quantizer,lyragan}.tflite`` with the flatbuffer schema
that ships in ``ai-edge-litert`` (``pip install 'audiofcn[convert]'``); nothing is executed.

The mapping is explicit: every convolution, leaky ReLU, residual add and int8 (re)quantization
in the graphs is named by its TF scope (``encoder_1/resnet_2bconv``, ...), the scope is mapped
to a module path of :class:`audiofcn.models.lyra_soundstream.LyraSoundStream` by
:func:`module_path`, int8 weights are dequantized per channel, and the conversion fails when a
weight tensor is left unused, a parameter or int8 scale is left unset, a shape, stride,
dilation or slope differs. ``--fixtures DIR`` also writes the small reference outputs of the
TFLite original that ``tests/codec/test_lyra_port.py`` compares the port against.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audiofcn.models.lyra_soundstream import LyraSoundStream, LyraSoundStreamConfig

GRAPHS = ("soundstream_encoder", "quantizer", "lyragan")

_SCOPE = re.compile(
    r"(first_layerconv|last_layer_act|last_layer|bottleneck_(\d)/(simpleconv|act)"
    r"|(encoder|decoder)_(\d)/(resnet_(\d)(a_act|b_act|adepthwise_conv|apointwise_conv|bconv"
    r"|_add)|act|simpleconv|simple_g(\d)|simple))")
_UNIT_STEP = {"a_act": "act_a", "b_act": "act_b", "adepthwise_conv": "dw",
              "apointwise_conv": "pw", "bconv": "bconv", "_add": "add"}


def module_path(tensor_name: str) -> tuple[str, int | None] | None:
    """TF scope in a tensor name -> (module path in the port, group of a split transposed
    conv or None); None when the name holds no layer scope."""
    found = list(_SCOPE.finditer(tensor_name))
    if not found:
        return None
    m = found[-1]
    whole, bneck, bkind, side, blk, _, unit, step, group = m.groups()[:9]
    if whole == "first_layerconv":
        return "encoder.first", None
    if whole == "last_layer_act":
        return "decoder.act", None
    if whole == "last_layer":
        return "decoder.last", None
    if bneck is not None:
        if bneck == "1":
            return ("encoder.bottleneck" if bkind == "simpleconv" else "encoder.act"), None
        return "decoder.bottleneck", None
    base = f"{side}.blocks.{blk}"
    if unit is not None:
        return f"{base}.units.{unit}.{_UNIT_STEP[step]}", None
    rest = m.group(6)
    if rest == "act":
        return f"{base}.act", None
    if rest == "simpleconv":
        return f"{base}.down", None
    return f"{base}.up", (int(group) if group is not None else None)


# --- flatbuffer reading ------------------------------------------------------------------------
@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None
    scale: np.ndarray | None = None
    zero_point: np.ndarray | None = None
    qdim: int = 0


@dataclass
class Op:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: list[Tensor]
    ops: list[Op]

    def producer(self, tensor: int) -> Op | None:
        for op in self.ops:
            if tensor in op.outputs:
                return op
        return None


_DTYPES = {0: np.float32, 2: np.int32, 9: np.int8, 4: np.int64, 6: np.bool_}


def read_tflite(path: Path) -> list[Graph]:
    from ai_edge_litert import schema_py_generated as S

    model = S.ModelT.InitFromObj(S.Model.GetRootAsModel(path.read_bytes(), 0))
    opnames = {v: k for k, v in S.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    graphs = []
    for sg in model.subgraphs:
        tensors = []
        for i, t in enumerate(sg.tensors):
            shape = tuple(int(s) for s in t.shape) if t.shape is not None else ()
            raw = model.buffers[t.buffer].data
            data = None
            if raw is not None and len(raw) and t.type in _DTYPES:
                data = np.frombuffer(bytes(raw), dtype=_DTYPES[t.type]).reshape(shape)
            q = t.quantization
            scale = zp = None
            qdim = 0
            if q is not None and q.scale is not None and len(q.scale):
                scale = np.asarray(q.scale, np.float64)
                zp = np.asarray(q.zeroPoint, np.float64)
                qdim = int(q.quantizedDimension)
            tensors.append(Tensor(i, t.name.decode(), shape, _DTYPES.get(t.type, object).__name__,
                                  data, scale, zp, qdim))
        ops = []
        for op in sg.operators:
            code = model.operatorCodes[op.opcodeIndex]
            kind = opnames[max(code.builtinCode, code.deprecatedBuiltinCode)]
            opts = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
            ops.append(Op(kind, [int(i) for i in op.inputs], [int(i) for i in op.outputs], opts))
        graphs.append(Graph((sg.name or b"main").decode(), tensors, ops))
    return graphs


def dequantize(t: Tensor) -> np.ndarray:
    if t.data is None:
        raise ValueError(f"{t.name}: not a constant")
    if t.scale is None:
        return t.data.astype(np.float64)
    shape = [1] * t.data.ndim
    if t.scale.size > 1:
        shape[t.qdim] = -1
    return (t.data.astype(np.float64) - t.zero_point.reshape(shape)) * t.scale.reshape(shape)


# --- mapping -------------------------------------------------------------------------------------
class Mapping:
    """Collects target-name -> value, the module attributes it checks, and the constants used."""

    def __init__(self) -> None:
        self.values: dict[str, torch.Tensor] = {}
        self.group_values: dict[str, dict[int, np.ndarray]] = {}
        self.checks: list[tuple[str, str, object]] = []  # (module path, attribute, expected)
        self.used: set[tuple[str, int]] = set()
        self.quantized: set[str] = set()
        self.carry_bias: dict[str, dict[int | None, np.ndarray]] = {}
        self.int8: set[str] = set()  # layers run as int8 kernels
        self.grids: dict[str, tuple[float, float]] = {}  # their input grid(s)
        self.raw: dict[str, dict[int | None, tuple[np.ndarray, np.ndarray]]] = {}

    def set(self, name: str, value: np.ndarray, group: int | None = None) -> None:
        if group is None:
            if name in self.values:
                raise ValueError(f"{name} set twice")
            self.values[name] = torch.from_numpy(np.ascontiguousarray(value, np.float32))
        else:
            slot = self.group_values.setdefault(name, {})
            if group in slot:
                raise ValueError(f"{name} group {group} set twice")
            slot[group] = value

    def fake_quant(self, path: str, t: Tensor, group: int | None = None) -> None:
        if t.scale is None or t.dtype != "int8":
            raise ValueError(f"{t.name}: expected an int8 tensor")
        self.quantized.add(path)
        channels = t.shape[-1]
        scale = np.broadcast_to(t.scale, (channels,)).astype(np.float64)
        zp = np.broadcast_to(t.zero_point, (channels,)).astype(np.float64)
        self.set(f"{path}.out_q.scale", scale, group)
        self.set(f"{path}.out_q.zero_point", zp, group)


    def input_grid(self, name: str, t: Tensor) -> None:
        """The grid of an int8 kernel's input (``name`` = ``{path}.int8.in`` or ``.in2``)."""
        if t.dtype != "int8" or t.scale is None or t.scale.size != 1:
            raise ValueError(f"{t.name}: expected a per-tensor int8 input")
        grid = (float(t.scale[0]), float(t.zero_point[0]))
        if self.grids.setdefault(name, grid) != grid:
            raise ValueError(f"{name}: groups read different input grids")

    def int8_conv(self, path: str, group: int | None, kind: str, x: Tensor, w: Tensor,
                  b: Tensor, out: Tensor) -> None:
        """An int8 conv: input grid, per-output-channel weight scales, raw int8/int32 values
        (to check that the stored float weights give them back)."""
        self.int8.add(path)
        self.input_grid(f"{path}.int8.in", x)
        channels = out.shape[-1]
        self.set(f"{path}.int8.weight_scale",
                 np.broadcast_to(w.scale, (channels,)).astype(np.float64), group)
        self.raw.setdefault(path, {})[group] = (_conv_weight(kind, w.data).astype(np.int64),
                                                b.data.astype(np.int64))


def _conv_weight(kind: str, w: np.ndarray) -> np.ndarray:
    """TFLite layout -> torch layout (1-D convs are stored as 2-D with width 1)."""
    if kind == "CONV_2D":  # (O, k, 1, I/g) -> (O, I/g, k)
        return w[:, :, 0, :].transpose(0, 2, 1)
    if kind == "DEPTHWISE_CONV_2D":  # (1, k, 1, C) -> (C, 1, k)
        return w[0, :, 0, :].T[:, None, :]
    return w[:, :, 0, :].transpose(2, 0, 1)  # TRANSPOSE_CONV (O, k, 1, I) -> (I, O, k)


def map_conv_graph(g: Graph, tag: str, mp: Mapping) -> None:
    t = g.tensors
    for op in g.ops:
        out = t[op.outputs[0]] if op.outputs else None
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
            w_i, b_i = (op.inputs[1], op.inputs[3]) if op.kind == "TRANSPOSE_CONV" else \
                (op.inputs[1], op.inputs[2])
            found = module_path(out.name)
            if found is None:
                raise ValueError(f"{tag}: no layer scope in {out.name}")
            path, group = found
            w, b = t[w_i], t[b_i]
            mp.used.update({(tag, w_i), (tag, b_i)})
            mp.set(f"{path}.weight", _conv_weight(op.kind, dequantize(w)), group)
            mp.set(f"{path}.bias", dequantize(b), group)
            mp.checks.append((path, "stride", op.options.get("strideH")))
            if op.kind != "TRANSPOSE_CONV":
                mp.checks.append((path, "dilation", op.options.get("dilationHFactor")))
            if op.options.get("padding") != 1 or op.options.get("fusedActivationFunction"):
                raise ValueError(f"{tag}: {out.name}: expected VALID padding, no fused act")
            if out.dtype == "int8":
                mp.fake_quant(path, out, group)
                x = t[op.inputs[2] if op.kind == "TRANSPOSE_CONV" else op.inputs[0]]
                mp.int8_conv(path, group, op.kind, x, w, b, out)
        elif op.kind == "LEAKY_RELU":
            path, _ = module_path(out.name)
            mp.checks.append((path, "slope", op.options["alpha"]))
            if out.dtype == "int8":
                mp.fake_quant(path, out)
                mp.int8.add(path)
                mp.input_grid(f"{path}.int8.in", t[op.inputs[0]])
        elif op.kind == "ADD" and out.name.endswith("_add/add"):
            path, _ = module_path(out.name)
            if out.dtype == "int8":
                mp.fake_quant(path, out)
                mp.int8.add(path)
                # in: the residual input, in2: the branch (the unit's bconv output)
                a, b = op.inputs
                if (module_path(t[a].name) or ("",))[0].endswith(".bconv"):
                    a, b = b, a
                if not (module_path(t[b].name) or ("",))[0].endswith(".bconv"):
                    raise ValueError(f"{tag}: {out.name}: no bconv input")
                mp.input_grid(f"{path}.int8.in", t[a])
                mp.input_grid(f"{path}.int8.in2", t[b])
        elif op.kind == "QUANTIZE":
            src = g.producer(op.inputs[0])
            if src is not None and src.kind == "CONCATENATION":
                # [state | new frames] re-quantized on the grid the new frames already lie on
                fed = [g.producer(i) for i in src.inputs]
                grids = {(float(t[d.inputs[0]].scale[0]), float(t[d.inputs[0]].zero_point[0]))
                         for d in fed if d is not None and d.kind == "DEQUANTIZE"}
                if grids != {(float(out.scale[0]), float(out.zero_point[0]))}:
                    raise ValueError(f"{tag}: {out.name}: state re-quantized on another grid")
                continue
            path, _ = module_path(t[op.inputs[0]].name)
            mp.fake_quant(path, out)
        elif op.kind == "SUB" and t[op.inputs[1]].data is not None:
            # streaming transposed conv: the carried tail loses the bias (counted once)
            path, group = module_path(out.name)
            mp.used.add((tag, op.inputs[1]))
            mp.carry_bias.setdefault(path, {})[group] = t[op.inputs[1]].data.astype(np.float64)


def map_quantizer(graphs: list[Graph], mp: Mapping) -> int:
    enc = next(g for g in graphs if g.name == "encode")
    dec = next(g for g in graphs if g.name == "decode")
    books = []
    for op in enc.ops:
        if op.kind == "SQUARED_DIFFERENCE":
            c = enc.tensors[op.inputs[1]]
            books.append(c.data[0].astype(np.float64))
            mp.used.add(("encode", c.index))
    gathers = [op for op in enc.ops if op.kind == "GATHER"]
    for i, op in enumerate(gathers):  # the looked-up copy of each codebook
        c = enc.tensors[op.inputs[0]]
        if not np.array_equal(c.data, books[i]):
            raise ValueError(f"encode: {c.name} differs from codebook {i}")
        mp.used.add(("encode", c.index))
    for op in dec.ops:
        if op.kind == "GATHER":
            c = dec.tensors[op.inputs[0]]
            if not any(np.array_equal(c.data, b) for b in books):
                raise ValueError(f"decode: {c.name} is none of the encoder's codebooks")
            mp.used.add(("decode", c.index))
    for i, b in enumerate(books):
        mp.set(f"quantizer.layers.{i}.codebook", b)
    return len(books)


def weight_constants(g: Graph, tag: str) -> set[tuple[str, int]]:
    """Constants that are parameters (float or int8 tensors of rank >= 1, int32 biases)."""
    out = set()
    for op in g.ops:
        for i in op.inputs:
            if i < 0:
                continue
            ten = g.tensors[i]
            if ten.data is None:
                continue
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "SQUARED_DIFFERENCE",
                           "GATHER") and ten.data.ndim >= 1 and ten.dtype != "int32" or \
                    (op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and ten.dtype == "int32") or \
                    (op.kind == "TRANSPOSE_CONV" and i == op.inputs[3]) or \
                    (op.kind == "SUB" and ten.dtype == "float32" and ten.data.ndim == 1):
                out.add((tag, i))
    return out


def convert(lyra_root: Path) -> tuple[LyraSoundStream, dict]:
    coeffs = lyra_root / "lyra" / "model_coeffs"
    if not coeffs.is_dir():
        coeffs = lyra_root  # the model_coeffs folder itself
    graphs = {n: read_tflite(coeffs / f"{n}.tflite") for n in GRAPHS}
    mp = Mapping()
    map_conv_graph(graphs["soundstream_encoder"][0], "encoder", mp)
    map_conv_graph(graphs["lyragan"][0], "lyragan", mp)
    n_books = map_quantizer(graphs["quantizer"], mp)

    expected = weight_constants(graphs["soundstream_encoder"][0], "encoder") | \
        weight_constants(graphs["lyragan"][0], "lyragan")
    for g in graphs["quantizer"]:
        expected |= {k for k in weight_constants(g, g.name) if g.tensors[k[1]].data.ndim >= 2}
    unused = expected - mp.used
    if unused:
        raise ValueError(f"unused weight tensors: {sorted(unused)[:5]}")

    # split transposed convs: groups along the input channels of the torch weight
    for name, parts in mp.group_values.items():
        if sorted(parts) != list(range(len(parts))):
            raise ValueError(f"{name}: groups {sorted(parts)}")
        mp.values[name] = torch.from_numpy(np.ascontiguousarray(
            np.concatenate([parts[k] for k in sorted(parts)], axis=0), np.float32))
    for name, (scale, zp) in mp.grids.items():
        mp.set(f"{name}_scale", np.array([scale]))
        mp.set(f"{name}_zero_point", np.array([zp]))
    for path, parts in mp.carry_bias.items():  # float copy of an int8 transposed conv's bias
        if path in mp.int8:
            mp.set(f"{path}.int8.carry_bias", np.concatenate([parts[k] for k in sorted(parts)]))

    cfg = LyraSoundStreamConfig(num_quantizers=n_books, quantized=tuple(sorted(mp.quantized)),
                                int8_kernels=tuple(sorted(mp.int8)))
    model = LyraSoundStream(cfg)
    targets = {k: v for k, v in model.state_dict().items()
               if not k.startswith("quantizer.") or k.endswith(".codebook")}
    missing = sorted(set(targets) - set(mp.values))
    extra = sorted(set(mp.values) - set(targets))
    if missing or extra:
        raise ValueError(f"unset parameters {missing[:5]}, unknown targets {extra[:5]}")
    state = model.state_dict()
    for k, v in mp.values.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise ValueError(f"{k}: shape {tuple(v.shape)} from the graph, "
                             f"{tuple(state[k].shape)} in the model")
        state[k] = v
    model.load_state_dict(state)
    for layer in model.quantizer.layers:  # codebooks are given; EMA counts start even
        layer.initialized.fill_(True)
        layer.cluster_size.fill_(1.0)
        layer.embed_sum.copy_(layer.codebook)
    modules = dict(model.named_modules())
    for path, attr, want in mp.checks:
        got = getattr(modules[path], attr)
        got = got[0] if isinstance(got, tuple) else got
        if not np.isclose(float(got), float(want)):
            raise ValueError(f"{path}.{attr}: {got} in the model, {want} in the graph")
    for path, parts in mp.raw.items():  # the stored floats give the int8/int32 values back
        keys = sorted(parts, key=lambda g: -1 if g is None else g)
        w_raw = np.concatenate([parts[k][0] for k in keys])
        b_raw = np.concatenate([parts[k][1] for k in keys])
        w, b = modules[path].int8_weights()
        if not (np.array_equal(w.numpy(), w_raw) and np.array_equal(b.numpy(), b_raw)):
            raise ValueError(f"{path}: stored weights do not give the int8 values back")
    report = {"parameters": len(mp.values), "quantized_layers": len(mp.quantized),
              "int8_kernels": len(mp.int8), "codebooks": n_books, "carry_bias_max_diff": 0.0}
    for path, parts in mp.carry_bias.items():  # float copy of each transposed conv's bias
        b = np.concatenate([parts[k] for k in sorted(parts, key=lambda g: -1 if g is None
                                                      else g)])
        report["carry_bias_max_diff"] = max(report["carry_bias_max_diff"], float(np.abs(
            b - modules[path].bias.detach().double().numpy()).max()))
    return model.eval(), report


KERNELS = {"xnnpack": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
           "reference": "BUILTIN_REF"}


def tflite_reference(coeffs: Path, audio: np.ndarray, n_q: int, *, kernels: str = "xnnpack",
                     codes: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run Lyra's three graphs frame by frame as Lyra's C++ does (fresh state per call):
    audio ``(T,)`` in [-1, 1] (T a multiple of 320) -> ``latents (F, 64)``, ``codes (F, n_q)``,
    ``audio (F*320,)``. With ``codes`` given, the decoder runs on them instead of the
    encoder's. ``kernels``: ``"xnnpack"`` (TFLite's default delegate, as Lyra's C++ runs it),
    ``"builtin"`` (TFLite's optimized built-in kernels) or ``"reference"`` (its reference
    kernels, what the port's ``arithmetic="tflite"`` reproduces bit for bit)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = {"experimental_op_resolver_type": getattr(OpResolverType, KERNELS[kernels])}
    enc = Interpreter(model_path=str(coeffs / "soundstream_encoder.tflite"), **kw)
    gan = Interpreter(model_path=str(coeffs / "lyragan.tflite"), **kw)
    # Lyra's C++ runs the quantizer without XNNPACK (built-in kernels)
    quant = Interpreter(model_path=str(coeffs / "quantizer.tflite"),
                        experimental_op_resolver_type=getattr(OpResolverType, KERNELS[
                            "reference" if kernels == "reference" else "builtin"]))
    enc.allocate_tensors()
    gan.allocate_tensors()
    q_enc, q_dec = quant.get_signature_runner("encode"), quant.get_signature_runner("decode")
    ei, eo = enc.get_input_details()[0]["index"], enc.get_output_details()[0]["index"]
    gi, go = gan.get_input_details()[0]["index"], gan.get_output_details()[0]["index"]
    frames = len(audio) // 320 if codes is None else len(codes)
    lat, cds, out = [], [], []
    for f in range(frames):
        if codes is None:
            enc.set_tensor(ei, audio[None, f * 320:(f + 1) * 320].astype(np.float32))
            enc.invoke()
            z = enc.get_tensor(eo).copy()
            lat.append(z[0, 0])
            idx = q_enc(input_frames=z, num_quantizers=np.array(n_q, np.int32))["output_0"]
            c = idx.reshape(-1)[:n_q].astype(np.int32)
        else:
            c = codes[f].astype(np.int32)
        cds.append(c)
        full = np.full((46, 1, 1), -1, np.int32)
        full[:len(c), 0, 0] = c
        zq = q_dec(encoding_indices=full)["output_0"]
        gan.set_tensor(gi, zq.astype(np.float32))
        gan.invoke()
        out.append(gan.get_tensor(go)[0].copy())
    return {"latents": np.stack(lat) if lat else np.zeros((0, 64), np.float32),
            "codes": np.stack(cds), "audio": np.concatenate(out)}


def write_fixtures(coeffs: Path, audio_path: Path, out: Path, start_s: float = 1.0,
                   frames: int = 20) -> None:
    """Small reference outputs of the TFLite original (its reference kernels, which the
    port's ``arithmetic="tflite"`` reproduces bit for bit) on ``frames`` frames of
    ``audio_path`` from ``start_s``: what the always-running test compares the shipped port
    against. ``*_xnnpack``: the same from TFLite with XNNPACK (Lyra's runtime), which the port's
    ``arithmetic="xnnpack"`` reproduces."""
    import soundfile as sf
    from safetensors.numpy import save_file

    x, sr = sf.read(str(audio_path), dtype="float32")
    if sr != 16000:
        raise ValueError(f"{audio_path}: expected 16 kHz")
    seg = x[int(start_s * sr):int(start_s * sr) + 320 * frames]
    seg = seg.astype(np.float16).astype(np.float32)  # stored as float16: run on those values
    ref = tflite_reference(coeffs, seg, 46, kernels="reference")
    xnn = tflite_reference(coeffs, seg, 46, kernels="xnnpack")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"input": seg.astype(np.float16), "latents": ref["latents"].astype(np.float32),
               "codes": ref["codes"].astype(np.uint8), "audio": ref["audio"].astype(np.float32),
               "codes_xnnpack": xnn["codes"].astype(np.uint8),
               "latents_xnnpack": xnn["latents"].astype(np.float32),
               "audio_xnnpack": xnn["audio"].astype(np.float32)},
              str(out), metadata={"source": f"{audio_path.name} from {start_s} s, "
                                  "google/lyra v2 TFLite reference kernels (BUILTIN_REF), "
                                  "46 quantizers; *_xnnpack: TFLite with XNNPACK"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lyra-root", required=True, type=Path,
                    help="copy of google/lyra (or its lyra/model_coeffs folder)")
    ap.add_argument("--out", required=True, type=Path, help="output .safetensors")
    ap.add_argument("--fp16", action="store_true", help="store weights as float16")
    ap.add_argument("--fixtures", type=Path,
                    help="also write TFLite reference outputs here (.safetensors)")
    args = ap.parse_args(argv)
    root = args.lyra_root.expanduser()
    model, report = convert(root)
    if args.fixtures:
        write_fixtures(root / "lyra" / "model_coeffs", root / "lyra" / "testdata" /
                       "sample1_16kHz.wav", args.fixtures)
    extra = {"source": "google/lyra v2 (lyra/model_coeffs)", "license": "Apache-2.0",
             "converter": "recipes/codec/convert_lyra.py", **report}
    if args.fp16:
        model = model.half()
    model.save_pretrained(args.out, extra=extra)
    print(json.dumps({"out": str(args.out), **report}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
