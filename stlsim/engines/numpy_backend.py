"""The ``"numpy"`` backend: the readable reference kernels, nothing fused."""
import collections

from ..grad.bptt import lif_backward
from .backend import Backend
from .clock import lif_forward

__all__ = ["BACKEND"]

BACKEND = Backend(name="numpy", lif_forward=lif_forward, lif_backward=lif_backward, fused=None,
                  calls=collections.Counter())
