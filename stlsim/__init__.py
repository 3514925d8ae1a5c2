"""stlsim: a NumPy/Numba reference simulator for synapse-threshold synergistic learning.

Spiking networks of LIF neurons whose synaptic weights AND per-neuron thresholds are
trained together by backpropagation through time with surrogate gradients (STL-SNN,
Sun et al., IEEE TCDS 2024). The equations, tagged (L1)-(L4) and (B1)-(B6), are in
``docs/model.md``.

``import stlsim`` loads numpy only; Numba, h5py, matplotlib and the data loaders are
imported when first used.
"""
__version__ = "0.1.0"   # the one version source: pyproject.toml reads it (tool.setuptools.dynamic)

from . import conventions, surrogate
from .kernels import get_num_threads, set_num_threads
from .layers import AvgPool2d, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d
from .network import Network, Record, StepTrace
from .neurons import LIF, Adaptation
from .spike_events import SpikeEvents

__all__ = ["__version__", "conventions", "surrogate", "Network", "Record", "StepTrace", "LIF", "Adaptation", "Dense", "Layer",
           "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout", "SpikeEvents", "set_num_threads",
           "get_num_threads"]
