"""Singing-voice separation: the functional API (:func:`separate`), training tasks and the
Open-Unmix peer. Models live in :mod:`audiofcn.models.separator`; metrics in
:mod:`audiofcn.eval.separation`."""

from audiofcn.separation.inference import (
    SeparationResult,
    load_separator,
    separate,
    wiener_refine,
)
from audiofcn.separation.training import (
    IBMMaskTask,
    MaskedVocalAETask,
    StemSegments,
    ideal_binary_mask,
    smooth_labels,
)

__all__ = ["IBMMaskTask", "MaskedVocalAETask", "SeparationResult", "StemSegments",
           "ideal_binary_mask", "load_separator", "separate", "smooth_labels", "wiener_refine"]
