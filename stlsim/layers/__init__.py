"""Layers: synapses with hand-derived backward passes, side by side."""
from .base import Context, Layer, Recurrence, THRESHOLD_SHARING
from .conv import Conv2d
from .dense import Dense
from .block import SynapseBlock
from .dropout import Dropout
from .pool import AvgPool2d, MaxPool2d
from .shape import Flatten, Reshape
from .activation import ReLU
from .leaky import LeakyIntegrator
from .batchnorm import BatchNorm
from .scale import Scale

__all__ = ["Context", "Layer", "Recurrence", "THRESHOLD_SHARING", "Dense", "Conv2d", "MaxPool2d",
           "AvgPool2d", "Flatten", "Reshape", "Dropout", "SynapseBlock", "ReLU", "LeakyIntegrator",
           "BatchNorm", "Scale"]
