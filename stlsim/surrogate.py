"""Surrogate gradients as (primitive, derivative) pairs, as in ``docs/model.md``.

The forward pass of a spiking neuron uses the Heaviside step H(x), x = m - theta,
with H(0) = 1 (L3). Its derivative is zero almost everywhere, so BPTT replaces
dH/dx by a surrogate sigma'(x). Each surrogate here is a pair:

* ``primitive(x)``  P(x): a smooth stand-in for H, used by *smooth mode*;
* ``derivative(x)`` P'(x) = sigma'(x): used by the backward pass.

Because P' is the exact derivative of P, a network run in smooth mode has BPTT
equal to its true gradient, which float64 finite differences can check.

=============  ================================  =========================================
name           sigma'(x)                          P(x)
=============  ================================  =========================================
atan(alpha)    (alpha/2) / (1 + (pi alpha x/2)^2)  atan(pi alpha x / 2) / pi + 1/2
sigmoid(alpha) alpha g (1 - g),  g = g(alpha x)    g(alpha x), g the logistic function
rectangular(a) 1/a if |x| < a/2 else 0             clip(x/a + 1/2, 0, 1)
superspike(b)  1 / (1 + b|x|)^2                    1/2 + x / (1 + b|x|)
superspike_sj  alpha / (1 + |x|)^2                 1/2 + alpha x / (1 + |x|)
triangle(a)    a max(0, 1 - |x|)                   1/2 + a q(x)  (see ``Triangle``)
=============  ================================  =========================================

Alias: ``get("fast_sigmoid", slope)`` is snnTorch's fast sigmoid, ``SuperSpike(slope)``.

The math lives in plain functions of (x, parameter) so that Numba (CPU and CUDA)
kernels can compile the very same expressions (``stlsim.kernels``).
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import check_real, fail

__all__ = ["Surrogate", "ATan", "Sigmoid", "Rectangular", "SuperSpike", "SpikingJellySuperSpike",
           "Triangle", "get", "NAMES", "ALIASES", "heaviside"]


def heaviside(x):
    """H(x) with H(0) = 1 (L3): spike AT threshold. Returns x's float dtype."""
    x = np.asarray(x)
    return (x >= 0).astype(x.dtype if x.dtype.kind == "f" else np.float64)


# --- scalar math, written once (numpy ufunc-friendly; Numba compiles the same code) ----

def atan_primitive(x, alpha):
    return np.arctan(0.5 * math.pi * alpha * x) / math.pi + 0.5


def atan_derivative(x, alpha):
    z = 0.5 * math.pi * alpha * x
    return (0.5 * alpha) / (1.0 + z * z)


def sigmoid_primitive(x, alpha):
    # Written with exp(-|z|) so that it never overflows.
    z = alpha * x
    ez = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + ez), ez / (1.0 + ez))


def sigmoid_derivative(x, alpha):
    g = sigmoid_primitive(x, alpha)
    return alpha * g * (1.0 - g)


def rectangular_primitive(x, width):
    return np.clip(x / width + 0.5, 0.0, 1.0)


def rectangular_derivative(x, width):
    return np.where(np.abs(x) < 0.5 * width, 1.0 / width, 0.0)


def superspike_primitive(x, beta):
    return 0.5 + x / (1.0 + beta * np.abs(x))


def superspike_derivative(x, beta):
    d = 1.0 + beta * np.abs(x)
    return 1.0 / (d * d)


def superspike_sj_primitive(x, alpha):
    return 0.5 + alpha * x / (1.0 + np.abs(x))


def superspike_sj_derivative(x, alpha):
    d = 1.0 + np.abs(x)
    return alpha / (d * d)


def triangle_primitive(x, alpha):
    a = np.minimum(np.abs(x), 1.0)
    return 0.5 + alpha * np.sign(x) * (1.0 - (1.0 - a) * (1.0 - a)) * 0.5


def triangle_derivative(x, alpha):
    return alpha * np.maximum(1.0 - np.abs(x), 0.0)


class Surrogate:
    """A (primitive, derivative) pair with one shape parameter.

    Subclasses set ``name``, ``param_name`` and the two static functions. Results
    keep the dtype of ``x`` (float32 in, float32 out).
    """

    name = "surrogate"
    param_name = "alpha"
    default = 1.0
    _primitive = staticmethod(lambda x, p: x)
    _derivative = staticmethod(lambda x, p: x)

    def __init__(self, value=None):
        value = self.default if value is None else value
        self.value = check_real(value, self.param_name, low=0.0, low_open=True,
                                owner=type(self).__name__)

    @property
    def params(self) -> dict:
        return {self.param_name: self.value}

    def primitive(self, x):
        """P(x): the smooth stand-in for H used in smooth mode."""
        x = np.asarray(x)
        return np.asarray(self._primitive(x, self.value), dtype=x.dtype if x.dtype.kind == "f" else None)

    def derivative(self, x):
        """P'(x) = sigma'(x): the surrogate derivative used by BPTT."""
        x = np.asarray(x)
        return np.asarray(self._derivative(x, self.value), dtype=x.dtype if x.dtype.kind == "f" else None)

    def spike(self, x, smooth: bool = False):
        """Forward nonlinearity: H(x) (spiking mode) or P(x) (smooth mode)."""
        return self.primitive(x) if smooth else heaviside(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.param_name}={self.value!r})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.value))


class ATan(Surrogate):
    """Arctangent surrogate (the paper's default, alpha = 2)."""
    name, param_name, default = "atan", "alpha", 2.0
    _primitive = staticmethod(atan_primitive)
    _derivative = staticmethod(atan_derivative)

    def __init__(self, alpha=2.0):
        super().__init__(alpha)


class Sigmoid(Surrogate):
    """Logistic surrogate, sigma'(x) = alpha g(alpha x)(1 - g(alpha x))."""
    name, param_name, default = "sigmoid", "alpha", 4.0
    _primitive = staticmethod(sigmoid_primitive)
    _derivative = staticmethod(sigmoid_derivative)

    def __init__(self, alpha=4.0):
        super().__init__(alpha)


class Rectangular(Surrogate):
    """Boxcar surrogate of width ``width``: 1/width inside |x| < width/2, else 0."""
    name, param_name, default = "rectangular", "width", 1.0
    _primitive = staticmethod(rectangular_primitive)
    _derivative = staticmethod(rectangular_derivative)

    def __init__(self, width=1.0):
        super().__init__(width)


class SuperSpike(Surrogate):
    """SuperSpike (fast sigmoid) surrogate, sigma'(x) = 1 / (1 + beta|x|)^2."""
    name, param_name, default = "superspike", "beta", 10.0
    _primitive = staticmethod(superspike_primitive)
    _derivative = staticmethod(superspike_derivative)

    def __init__(self, beta=10.0):
        super().__init__(beta)


class SpikingJellySuperSpike(Surrogate):
    """SpikingJelly's ``SuperSpike(alpha)``: sigma'(x) = alpha / (1 + |x|)^2.

    A different family from Zenke's ``SuperSpike(beta)`` above (the width does not
    change with the parameter, the height does); they agree only at alpha = beta = 1.
    Primitive P(x) = 1/2 + alpha x / (1 + |x|) (its range is [1/2 - alpha, 1/2 + alpha]).
    """
    name, param_name, default = "superspike_sj", "alpha", 1.0
    _primitive = staticmethod(superspike_sj_primitive)
    _derivative = staticmethod(superspike_sj_derivative)

    def __init__(self, alpha=1.0):
        super().__init__(alpha)


class Triangle(Surrogate):
    """Norse's triangle: sigma'(x) = alpha max(0, 1 - |x|) (support |x| < 1).

    Primitive P(x) = 1/2 + alpha q(x), q(x) = sign(x) (1 - (1 - |x|)^2) / 2 for
    |x| < 1 and sign(x) / 2 beyond (P spans [0, 1] at alpha = 1).
    """
    name, param_name, default = "triangle", "alpha", 0.3
    _primitive = staticmethod(triangle_primitive)
    _derivative = staticmethod(triangle_derivative)

    def __init__(self, alpha=0.3):
        super().__init__(alpha)


_REGISTRY = {cls.name: cls for cls in (ATan, Sigmoid, Rectangular, SuperSpike,
                                       SpikingJellySuperSpike, Triangle)}
# Other frameworks' names for a surrogate stlsim has: name -> (class, the peer's default).
# snnTorch's ``fast_sigmoid(slope)`` is 1 / (slope |x| + 1)^2 (snntorch/surrogate.py),
# Zenke's SuperSpike with beta = slope.
ALIASES = {"fast_sigmoid": (SuperSpike, 25.0)}
NAMES = tuple(_REGISTRY)


def get(spec, value=None, owner: str | None = None) -> Surrogate:
    """Return a Surrogate from an instance or a name ('atan', 'sigmoid', ...)."""
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, str) and spec.lower() in _REGISTRY:
        cls = _REGISTRY[spec.lower()]
        return cls() if value is None else cls(value)
    if isinstance(spec, str) and spec.lower() in ALIASES:
        cls, default = ALIASES[spec.lower()]
        return cls(default if value is None else value)
    listed = ", ".join(repr(n) for n in NAMES + tuple(ALIASES))
    raise fail("surrogate", f"a stlsim.surrogate.Surrogate or one of {listed}", repr(spec), owner)
