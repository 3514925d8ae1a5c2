"""Named architecture presets: ``build(name, ...)`` -> list of layers, ``network(name, ...)``.

===================  =============================================================  ====
name                 layers (every Conv2d and Dense is followed by its LIF neurons)   T
===================  =============================================================  ====
``stl-mnist``        conv128c5 - BN - maxpool2 - conv128c5 - BN - maxpool2 -            4
                     dropout - dense 2048 - dropout - dense C*P (the paper)
``conv-small``       conv16c5 - BN - maxpool2 - conv32c3 - BN - maxpool2 - dense C*P     4
                     (a small network for quick Fashion-MNIST runs)
``cifar10-8layer``   6 x conv3 (64-128-256-256-512-512, BN, maxpool after 2, 4, 6) -     8
                     dropout - dense 1024 - dropout - dense C*P: 8 weight layers
``mlp``              dense ``hidden`` (800) - dense C*P                                  4
===================  =============================================================  ====

``stl-mnist`` follows the paper (Sun et al., IEEE TCDS 2024): 5x5 kernels with padding 2. The
public reference code (github.com/sunhongze/STL-SNN, ``spiking_model.py``) differs: it
uses 3x3 kernels with padding 1, adaptive max pooling, ``time_step = 8`` in
``params.py``, and although it builds ``bn1``/``bn2`` its ``forward`` never calls
them. The paper states only "8 layers, T = 8" for CIFAR-10; the widths of
``cifar10-8layer`` are stlsim's choice.

Inputs of shape (H, W) (e.g. Fashion-MNIST's (28, 28) images) get a leading
``Reshape((1, H, W))`` in the convolutional presets; ``mlp`` flattens any shape.
``Architecture.time_steps`` is the T its source uses; the caller encodes the input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_choice, check_int, check_real, fail
from .layers import Conv2d, Dense, Dropout, Flatten, MaxPool2d, Reshape

__all__ = ["Architecture", "ARCHITECTURES", "names", "build", "network"]

@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    time_steps: int
    source: str


ARCHITECTURES = {
    "stl-mnist": Architecture(
        "stl-mnist", "conv128c5-BN-LIF-mp2-conv128c5-BN-LIF-mp2-drop0.5-fc2048-LIF-drop0.5-fc(C*P)-LIF",
        4, "the paper's MNIST network (Sun et al., IEEE TCDS 2024; the reference code uses 3x3 kernels)"),
    "conv-small": Architecture(
        "conv-small", "conv16c5-BN-LIF-mp2-conv32c3-BN-LIF-mp2-fc(C*P)-LIF", 4,
        "stlsim: a small network for quick Fashion-MNIST runs"),
    "cifar10-8layer": Architecture(
        "cifar10-8layer", "6 conv3 (64,128,256,256,512,512)-BN-LIF, mp2 after conv 2/4/6, "
        "drop-fc1024-LIF-drop-fc(C*P)-LIF", 8,
        "paper's CIFAR-10 table: 8 layers, T = 8 (widths are stlsim's choice)"),
    "mlp": Architecture("mlp", "fc(hidden)-LIF-fc(C*P)-LIF", 4, "stlsim: dense baseline"),
}

_OPTIONS = {
    "stl-mnist": {"dropout": 0.5, "batchnorm": True, "threshold_sharing": "neuron"},
    "conv-small": {"dropout": 0.0, "batchnorm": True, "threshold_sharing": "neuron"},
    "cifar10-8layer": {"dropout": 0.5, "batchnorm": True, "threshold_sharing": "neuron"},
    "mlp": {"dropout": 0.0, "hidden": 800, "threshold_sharing": "neuron"},
}


def names() -> tuple:
    """The preset names, for ``--arch`` choices."""
    return tuple(ARCHITECTURES)


def _image_shape(input_shape, name):
    if len(input_shape) == 2:
        return (1,) + input_shape, [Reshape((1,) + input_shape, input_shape=input_shape)]
    if len(input_shape) == 3:
        return input_shape, []
    raise fail("input_shape", "(H, W) or (C, H, W) for a convolutional preset",
               repr(input_shape), f"build({name!r})")


def _dropout(p):
    return [Dropout(p)] if p > 0 else []


def build(name: str, *, input_shape, n_classes: int, population: int = 1, **options) -> list:
    """The layer list of preset ``name`` for inputs of ``input_shape`` and C*P outputs.

    Options (defaults per preset): ``dropout`` (probability before each hidden dense
    layer), ``batchnorm``, ``threshold_sharing`` ("neuron", "channel" or "layer"; the
    dense layers use "layer" when "channel" is asked), ``hidden`` (mlp only).
    The first layer fixes ``input_shape``, so ``Network(build(...))`` needs no more.
    """
    owner = f"build({name!r})"
    check_choice(name, "name", names(), "build")
    input_shape = tuple(check_int(n, "input_shape", low=1, owner=owner) for n in np.atleast_1d(input_shape))
    n_classes = check_int(n_classes, "n_classes", low=1, owner=owner)
    population = check_int(population, "population", low=1, owner=owner)
    unknown = set(options) - set(_OPTIONS[name])
    if unknown:
        raise fail("options", f"among {sorted(_OPTIONS[name])}", repr(sorted(unknown)), owner, TypeError)
    opt = dict(_OPTIONS[name], **options)
    p = check_real(opt["dropout"], "dropout", low=0.0, high=1.0, high_open=True, owner=owner)
    sharing = opt["threshold_sharing"]
    check_choice(sharing, "threshold_sharing", ("neuron", "channel", "layer"), owner)
    dense_sharing = "layer" if sharing == "layer" else "neuron"
    n_out = n_classes * population

    if name == "mlp":
        hidden = check_int(opt["hidden"], "hidden", low=1, owner=owner)
        n_in = int(np.prod(input_shape))
        front = [Flatten(input_shape=input_shape)] if len(input_shape) > 1 else []
        return front + _dropout(p) + [Dense(n_in, hidden, threshold_sharing=dense_sharing)] + _dropout(p) + [
            Dense(hidden, n_out, threshold_sharing=dense_sharing)]

    (channels, height, width), layers = _image_shape(input_shape, name)
    bn = bool(opt["batchnorm"])

    def conv(c_in, c_out, k, input_size=None):
        return Conv2d(c_in, c_out, k, padding=k // 2, batchnorm=bn, threshold_sharing=sharing,
                      input_size=input_size)

    if name == "stl-mnist":
        layers += [conv(channels, 128, 5, (height, width)), MaxPool2d(2), conv(128, 128, 5), MaxPool2d(2),
                   Flatten()]
        flat = 128 * (height // 4) * (width // 4)
        layers += _dropout(p) + [Dense(flat, 2048, threshold_sharing=dense_sharing)]
        layers += _dropout(p) + [Dense(2048, n_out, threshold_sharing=dense_sharing)]
    elif name == "conv-small":
        layers += [conv(channels, 16, 5, (height, width)), MaxPool2d(2), conv(16, 32, 3), MaxPool2d(2),
                   Flatten()]
        flat = 32 * (height // 4) * (width // 4)
        layers += _dropout(p) + [Dense(flat, n_out, threshold_sharing=dense_sharing)]
    elif name == "cifar10-8layer":
        widths = (64, 128, 256, 256, 512, 512)
        c_in = channels
        for i, c_out in enumerate(widths):
            layers.append(conv(c_in, c_out, 3, (height, width) if i == 0 else None))
            if i % 2 == 1:
                layers.append(MaxPool2d(2))
            c_in = c_out
        layers.append(Flatten())
        flat = widths[-1] * (height // 8) * (width // 8)
        layers += _dropout(p) + [Dense(flat, 1024, threshold_sharing=dense_sharing)]
        layers += _dropout(p) + [Dense(1024, n_out, threshold_sharing=dense_sharing)]
    return layers


def network(name: str, *, input_shape, n_classes: int, population: int = 1, neuron=None,
            surrogate="atan", seed: int = 0, dtype=np.float32, backend: str = "auto",
            **options):
    """``Network(build(name, ...), input_shape=input_shape, ...)``: a preset, ready to train."""
    from .network import Network
    layers = build(name, input_shape=input_shape, n_classes=n_classes, population=population, **options)
    return Network(layers, neuron=neuron, surrogate=surrogate, population=population, seed=seed,
                   dtype=dtype, backend=backend, input_shape=tuple(np.atleast_1d(input_shape).tolist()))
