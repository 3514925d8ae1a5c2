"""Layers: synapses with hand-derived backward passes, side by side."""
from .base import Context, Layer, THRESHOLD_SHARING
from .dense import Dense

__all__ = ["Context", "Layer", "THRESHOLD_SHARING", "Dense"]
