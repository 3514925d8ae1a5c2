"""The ``"numpy"`` backend: the readable reference kernels."""
from ..grad.bptt import lif_backward
from .clock import lif_forward

__all__ = ["lif_forward", "lif_backward", "NAME"]

NAME = "numpy"
