"""Load Keras-1 HDF5 weights of keunwoochoi/music-auto_tagging-keras into audiofcn models.

Each loader is an explicit table: Keras tensor (layer, weight) -> model parameter, with the
transform that turns Keras-1 semantics into PyTorch's. :func:`apply_table` refuses a Keras
tensor left unused, a parameter left unset, or a shape that differs: no positional zips.

Keras-1 facts the tables encode (read from the keras 1.0.6 and 1.2.0 sources):

* Conv kernels are stored ``(out, in, rows, cols)`` in both files. Theano's ``conv2d`` flips
  the kernel (true convolution), TensorFlow's does not (cross-correlation, as PyTorch): the
  Theano file's kernels are flipped on both spatial axes.
* BatchNormalization at test time: keras 1.0.6 (MusicTaggerCNN) computes
  ``(x - mean) / (running_std + 1e-6) * gamma + beta`` where ``running_std`` is a standard
  deviation; keras >= 1.0.8 (MusicTaggerCRNN) stores the *variance* under the same name and
  computes ``(x - mean) / sqrt(var + eps) * gamma + beta``. Both are mode 0 (running
  statistics), so no batch statistics are involved.
* ``bn_0_freq`` (despite its name) normalises per time frame: 1366 (CNN) or 1440 (CRNN,
  after zero padding) statistics.
* Dense kernels are ``(in, out)``; GRU weights are per gate ``W_z, U_z, b_z, W_r, ...``.

h5py is needed only here (``pip install 'audiofcn[convert]'``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from audiofcn.frontend import choi_keras_logmel
from audiofcn.models.crnn import CRNN, CRNNConfig
from audiofcn.models.fcn import FCN, FCNConfig

# The 50 Million Song Dataset tags, in the output order of the published models (README).
MSD50_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy")

KERAS_106_BN_EPS = 1e-6  # BatchNormalization default in keras 1.0.6 (MusicTaggerCNN)
KERAS_12_BN_EPS = 1e-3  # BatchNormalization default in keras 1.2 (MusicTaggerCRNN)

Transform = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Entry:
    """``target`` parameter <- ``transform(*[keras[s] for s in sources])``."""

    target: str
    sources: tuple[str, ...]
    transform: Transform | None = None  # None: copied as is
    note: str = ""


def read_keras_h5(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """``"layer/weight"`` -> array for every weight in a Keras-1 ``save_weights`` file.

    Weight names lose their backend suffixes (``bn1_gamma_1:0`` -> ``bn1/gamma``).
    """
    import h5py

    out: dict[str, np.ndarray] = {}
    def text(n: bytes | str) -> str:
        return n.decode() if isinstance(n, bytes) else str(n)

    with h5py.File(path, "r") as f:
        for layer in map(text, f.attrs["layer_names"]):
            group = f[layer]
            for wname in map(text, group.attrs["weight_names"]):
                short = re.sub(r"(_\d+)?(:\d+)?$", "", wname.split("/")[-1])
                short = short.removeprefix(layer + "_")
                out[f"{layer}/{short}"] = np.asarray(group[wname], dtype=np.float32)
    return out


def apply_table(model: nn.Module, keras: dict[str, np.ndarray],
                table: list[Entry]) -> nn.Module:
    """Set every parameter and buffer of ``model`` from ``keras`` through ``table``.

    Raises:
        ValueError: a Keras tensor unused, a model tensor unset or set twice, a shape mismatch.
    """
    state = {k: v for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    new, used = {}, set()
    for e in table:
        if e.target not in state:
            raise ValueError(f"{e.target}: no such parameter in {type(model).__name__}")
        if e.target in new:
            raise ValueError(f"{e.target}: set twice")
        missing = [s for s in e.sources if s not in keras]
        if missing:
            raise ValueError(f"{e.target}: Keras weight(s) {missing} not in the file")
        args = [keras[s] for s in e.sources]
        value = np.asarray(e.transform(*args) if e.transform else args[0], dtype=np.float32)
        if tuple(value.shape) != tuple(state[e.target].shape):
            raise ValueError(f"{e.target}: shape {tuple(value.shape)} from {e.sources}, "
                             f"model has {tuple(state[e.target].shape)}")
        new[e.target] = torch.from_numpy(np.ascontiguousarray(value))
        used.update(e.sources)
    unset = sorted(set(state) - set(new))
    unused = sorted(set(keras) - used)
    if unset or unused:
        raise ValueError(f"unmapped: model tensors {unset}, Keras tensors {unused}")
    model.load_state_dict(new, strict=False)
    return model.eval()


def _conv_kernel(backend: str) -> Transform:
    if backend == "theano":
        return lambda w: w[:, :, ::-1, ::-1]  # Theano convolves: flip to cross-correlation
    if backend == "tensorflow":
        return lambda w: w
    raise ValueError(f"unknown backend {backend!r} ('theano' or 'tensorflow')")


def _bn_std_keras106(torch_eps: float) -> Transform:
    """keras 1.0.6 divides by ``running_std + 1e-6``; PyTorch by ``sqrt(var + eps)``."""
    return lambda s: (s.astype(np.float64) + KERAS_106_BN_EPS) ** 2 - torch_eps


def crnn_table(backend: str, n_layers: int = 4, n_grus: int = 2) -> list[Entry]:
    """Keras ``MusicTaggerCRNN`` (keras >= 1.0.8: ``running_std`` holds the variance)."""
    t = [Entry("input_norm.weight", ("bn_0_freq/gamma",)),
         Entry("input_norm.bias", ("bn_0_freq/beta",)),
         Entry("input_norm.running_mean", ("bn_0_freq/running_mean",)),
         Entry("input_norm.running_var", ("bn_0_freq/running_std",), note="is a variance")]
    for i in range(n_layers):
        k, m = f"{i + 1}", f"layers.{i}"
        t += [Entry(f"{m}.0.weight", (f"conv{k}/W",), _conv_kernel(backend)),
              Entry(f"{m}.0.bias", (f"conv{k}/b",)),
              Entry(f"{m}.1.weight", (f"bn{k}/gamma",)),
              Entry(f"{m}.1.bias", (f"bn{k}/beta",)),
              Entry(f"{m}.1.running_mean", (f"bn{k}/running_mean",)),
              Entry(f"{m}.1.running_var", (f"bn{k}/running_std",), note="is a variance")]
    cat = lambda *a: np.concatenate(a, axis=-1)  # noqa: E731  gates z, r, h side by side
    for i in range(n_grus):
        g = f"gru{i + 1}"
        t += [Entry(f"grus.{i}.W", (f"{g}/W_z", f"{g}/W_r", f"{g}/W_h"), cat),
              Entry(f"grus.{i}.U", (f"{g}/U_z", f"{g}/U_r", f"{g}/U_h"), cat),
              Entry(f"grus.{i}.b", (f"{g}/b_z", f"{g}/b_r", f"{g}/b_h"), cat)]
    t += [Entry("classifier.weight", ("output/W",), lambda w: w.T),
          Entry("classifier.bias", ("output/b",))]
    return t


def fcn_table(backend: str, n_layers: int = 5, torch_eps: float = 1e-5) -> list[Entry]:
    """Keras ``MusicTaggerCNN`` (keras 1.0.6 BN; the conv bias folds into the BN mean, since
    the audiofcn FCN's convs have none: ``BN(Wx + b) = (Wx - (mean - b)) / d``)."""
    var = _bn_std_keras106(torch_eps)
    t = [Entry("input_norm.weight", ("bn_0_freq/gamma",)),
         Entry("input_norm.bias", ("bn_0_freq/beta",)),
         Entry("input_norm.running_mean", ("bn_0_freq/running_mean",)),
         Entry("input_norm.running_var", ("bn_0_freq/running_std",), var)]
    for i in range(n_layers):
        k, m = f"{i + 1}", f"layers.{i}"
        t += [Entry(f"{m}.0.weight", (f"conv{k}/W",), _conv_kernel(backend)),
              Entry(f"{m}.1.weight", (f"bn{k}/gamma",)),
              Entry(f"{m}.1.bias", (f"bn{k}/beta",)),
              Entry(f"{m}.1.running_mean", (f"bn{k}/running_mean", f"conv{k}/b"),
                    lambda mean, b: mean - b, note="conv bias folded in"),
              Entry(f"{m}.1.running_var", (f"bn{k}/running_std",), var)]
    t += [Entry("classifier.weight", ("output/W",), lambda w: w.T),
          Entry("classifier.bias", ("output/b",))]
    return t


def msd50_crnn_config(bn_eps: float = KERAS_12_BN_EPS) -> CRNNConfig:
    return CRNNConfig(labels=MSD50_TAGS, frontend=choi_keras_logmel(), bn_eps=bn_eps)


def msd50_fcn_config() -> FCNConfig:
    """MusicTaggerCNN as published (the code in the repository says 64-128-128-128-64 channels;
    the weight file holds 32-128-128-192-256, 865,950 trainable parameters as its README)."""
    return FCNConfig(labels=MSD50_TAGS, frontend=choi_keras_logmel(), input_length=349_440,
                     channels=(32, 128, 128, 192, 256),
                     pools=((2, 4), (2, 4), (2, 4), (3, 5), (4, 4)), activation="elu",
                     dropout=0.0, input_norm="frames")


def load_choi_crnn(path: str | os.PathLike[str], backend: str,
                   bn_eps: float = KERAS_12_BN_EPS) -> CRNN:
    """``music_tagger_crnn_weights_{theano,tensorflow}.h5`` -> :class:`CRNN` in eval mode."""
    return apply_table(CRNN(msd50_crnn_config(bn_eps)), read_keras_h5(path),
                       crnn_table(backend))  # type: ignore[return-value]


def load_choi_fcn(path: str | os.PathLike[str], backend: str) -> FCN:
    """``music_tagger_cnn_weights_{theano,tensorflow}.h5`` -> :class:`FCN` in eval mode."""
    return apply_table(FCN(msd50_fcn_config()), read_keras_h5(path),
                       fcn_table(backend))  # type: ignore[return-value]


__all__ = ["MSD50_TAGS", "Entry", "apply_table", "crnn_table", "fcn_table", "load_choi_crnn",
           "load_choi_fcn", "msd50_crnn_config", "msd50_fcn_config", "read_keras_h5"]
