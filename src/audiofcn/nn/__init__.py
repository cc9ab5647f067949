"""Reusable blocks shared by the models (conv-BN-act, SE, causal convs, quantizers, losses)."""
