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
           "Triangle", "get", "NAMES", "ALIASES", "heaviside", "PEER_SURROGATES",
           "StraightThrough", "SignedConstant", "SpikeGate", "SpikeRateEscape", "LeakyGate",
           "SparseFastSigmoid", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign", "Erf",
           "PiecewiseLeakyReLU", "LogAbs", "S2NN", "QPseudoSpike", "LeakyKReLU", "HeaviTanh",
           "Circ", "HeaviErfc"]


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

    # A second shape parameter (None: the surrogate has one): its name, default, and the
    # lowest value it may take (exclusive when ``second_low_open``).
    second_name = None
    second_default = None
    second_low = None
    second_low_open = False
    low_open = True            # the first parameter must be > 0 (False: >= 0)

    def __init__(self, value=None, second=None):
        value = self.default if value is None else value
        self.value = check_real(value, self.param_name, low=0.0, low_open=self.low_open,
                                owner=type(self).__name__)
        self.second = None
        if self.second_name is not None:
            second = self.second_default if second is None else second
            self.second = check_real(second, self.second_name, low=self.second_low,
                                     low_open=self.second_low_open, owner=type(self).__name__)
        elif second is not None:
            raise fail("second", f"None ({type(self).__name__} has one parameter)", repr(second),
                       type(self).__name__, TypeError)

    @property
    def values(self) -> tuple:
        """The shape parameters, in the order the scalar functions take them."""
        return (self.value,) if self.second_name is None else (self.value, self.second)

    @property
    def params(self) -> dict:
        out = {self.param_name: self.value}
        if self.second_name is not None:
            out[self.second_name] = self.second
        return out

    def primitive(self, x):
        """P(x): the smooth stand-in for H used in smooth mode."""
        x = np.asarray(x)
        return np.asarray(self._primitive(x, *self.values), dtype=x.dtype if x.dtype.kind == "f" else None)

    def derivative(self, x):
        """P'(x) = sigma'(x): the surrogate derivative used by BPTT."""
        x = np.asarray(x)
        return np.asarray(self._derivative(x, *self.values), dtype=x.dtype if x.dtype.kind == "f" else None)

    def spike(self, x, smooth: bool = False):
        """Forward nonlinearity: H(x) (spiking mode) or P(x) (smooth mode)."""
        return self.primitive(x) if smooth else heaviside(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.values == other.values

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + self.values)


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


# --- the other surrogates of snnTorch 1.0, SpikingJelly 2.0 and Norse 1.1 ----------------
# Each sigma' is transcribed from the peer's backward (file cited in the class); P is an
# antiderivative of it (docs/model.md (S1)-(S17)), so that smooth mode checks the pair by
# finite differences. The constant of P is chosen to make P(0) = 1/2 where it can.

def straight_through_primitive(x, scale):
    return 0.5 + scale * x


def straight_through_derivative(x, scale):
    return scale + 0.0 * x


def signed_constant_primitive(x, threshold):
    return 0.5 - threshold * np.abs(x)


def signed_constant_derivative(x, threshold):
    return np.where(x >= 0, -threshold, threshold) + 0.0 * x


def spike_gate_primitive(x, scale):
    return scale * np.maximum(x, 0.0)


def spike_gate_derivative(x, scale):
    return np.where(x > 0, scale, 0.0) + 0.0 * x


def spike_rate_escape_primitive(x, slope, beta):
    shifted = x - 1.0
    below = (slope / beta) * np.exp(beta * np.minimum(shifted, 0.0))
    above = (slope / beta) * (2.0 - np.exp(-beta * np.maximum(shifted, 0.0)))
    return np.where(shifted < 0, below, above)


def spike_rate_escape_derivative(x, slope, beta):
    return slope * np.exp(-beta * np.abs(x - 1.0))


def leaky_gate_primitive(x, slope):
    return 0.5 + np.where(x > 0, x, slope * x)


def leaky_gate_derivative(x, slope):
    return np.where(x > 0, 1.0, slope) + 0.0 * x


def sparse_fast_sigmoid_primitive(x, slope, floor):
    def antiderivative(z):
        return z / (1.0 + slope * np.abs(z))
    return antiderivative(np.maximum(x, floor)) - antiderivative(floor)


def sparse_fast_sigmoid_derivative(x, slope, floor):
    d = slope * np.abs(x) + 1.0
    return np.where(x > floor, 1.0 / (d * d), 0.0)


def piecewise_quadratic_primitive(x, alpha):
    a = np.minimum(np.abs(x), 1.0 / alpha)
    return 0.5 + np.sign(x) * (alpha * a - 0.5 * alpha * alpha * a * a)


def piecewise_quadratic_derivative(x, alpha):
    return np.where(np.abs(x) > 1.0 / alpha, 0.0, alpha - alpha * alpha * np.abs(x))


def piecewise_exp_primitive(x, alpha):
    half = 0.5 * np.exp(-alpha * np.abs(x))
    return np.where(x < 0, half, 1.0 - half)


def piecewise_exp_derivative(x, alpha):
    return 0.5 * alpha * np.exp(-alpha * np.abs(x))


def soft_sign_primitive(x, alpha):
    return 0.5 + 0.5 * x / (1.0 / alpha + np.abs(x))


def soft_sign_derivative(x, alpha):
    d = 1.0 / alpha + np.abs(x)
    return 1.0 / (2.0 * alpha * d * d)


def _erf(z):
    from scipy.special import erf  # lazily: import stlsim loads numpy only
    return erf(z)


def erf_primitive(x, alpha):
    return 0.5 + 0.5 * _erf(alpha * x)


def erf_derivative(x, alpha):
    z = alpha * x
    return (alpha / math.sqrt(math.pi)) * np.exp(-z * z)


def piecewise_leaky_relu_primitive(x, width, leak):
    inside = x / (2.0 * width) + 0.5
    return np.where(x >= width, 1.0 + leak * (x - width),
                    np.where(x <= -width, leak * (x + width), inside))


def piecewise_leaky_relu_derivative(x, width, leak):
    return np.where(np.abs(x) < width, 1.0 / (2.0 * width), leak) + 0.0 * x


def log_abs_primitive(x, alpha):
    return 0.5 + np.sign(x) * np.log1p(alpha * np.abs(x))


def log_abs_derivative(x, alpha):
    return 1.0 / (1.0 / alpha + np.abs(x))


def s2nn_primitive(x, alpha, beta):
    return np.where(x < 0, sigmoid_primitive(x, alpha), 0.5 + beta * np.log1p(np.maximum(x, 0.0)))


def s2nn_derivative(x, alpha, beta):
    g = sigmoid_primitive(x, alpha)
    return np.where(x < 0, alpha * g * (1.0 - g), beta / (np.maximum(x, 0.0) + 1.0))


def q_pseudo_spike_primitive(x, alpha):
    u = 1.0 + 2.0 / (alpha - 1.0) * np.abs(x)
    return 0.5 + np.sign(x) * 0.5 * (1.0 - u ** (1.0 - alpha))


def q_pseudo_spike_derivative(x, alpha):
    return (1.0 + 2.0 / (alpha - 1.0) * np.abs(x)) ** (-alpha)


def leaky_k_relu_primitive(x, k, leak):
    return 0.5 + np.where(x >= 0, k * x, leak * x)


def leaky_k_relu_derivative(x, k, leak):
    return np.where(x >= 0, k, leak) + 0.0 * x


def heavi_tanh_primitive(x, k):
    return 0.5 + np.tanh(k * x) / k


def heavi_tanh_derivative(x, k):
    t = np.tanh(x * k)
    return 1.0 - t * t


def circ_primitive(x, alpha):
    return 0.5 + alpha * x / np.sqrt(alpha * alpha + x * x)


def circ_derivative(x, alpha):
    r = alpha * alpha + x * x
    return alpha ** 3 / (r * np.sqrt(r))


# Norse divides by ``torch.as_tensor(np.pi).sqrt()``, a float32 tensor (the default dtype)
# even in a float64 model: its sqrt(pi) is float32's (threshold.py ``HeaviErfc.backward``).
NORSE_SQRT_PI = float(np.sqrt(np.float32(math.pi)))


def heavi_erfc_primitive(x, k):
    return 0.5 + (math.sqrt(math.pi) / NORSE_SQRT_PI) * _erf(k * x) / k


def heavi_erfc_derivative(x, k):
    z = k * x
    return 2.0 * np.exp(-z * z) / NORSE_SQRT_PI


def _surrogate_class(cls_name, name, doc, primitive, derivative, param, default, second=None,
                     second_default=None, second_low=None, second_low_open=False, low_open=True):
    """A ``Surrogate`` subclass for one (P, P') pair (the peers' many one-line surrogates)."""
    attrs = {"__doc__": doc, "name": name, "param_name": param, "default": default,
             "_primitive": staticmethod(primitive), "_derivative": staticmethod(derivative),
             "second_name": second, "second_default": second_default, "second_low": second_low,
             "second_low_open": second_low_open, "low_open": low_open, "__module__": __name__}
    return type(cls_name, (Surrogate,), attrs)


StraightThrough = _surrogate_class(
    "StraightThrough", "straight_through",
    """snnTorch ``straight_through_estimator()``: sigma'(x) = scale (1), P = 1/2 + scale x
    (snntorch/surrogate.py ``StraightThroughEstimator.backward``: ``grad_output.clone()``). (S1)""",
    straight_through_primitive, straight_through_derivative, "scale", 1.0)
SignedConstant = _surrogate_class(
    "SignedConstant", "snntorch_triangular",
    """snnTorch ``triangular(threshold)`` as its code computes it: sigma'(x) = threshold for
    x < 0 and -threshold for x >= 0 (snntorch/surrogate.py ``Triangular.backward``: ``grad =
    grad_input * threshold; grad[input_ >= 0] = -grad[input_ >= 0]``), not a triangle.
    P = 1/2 - threshold |x|. (S2)""",
    signed_constant_primitive, signed_constant_derivative, "threshold", 1.0)
SpikeGate = _surrogate_class(
    "SpikeGate", "spike_gate",
    """snnTorch ``heaviside()``: sigma'(x) = H'(x) (1 above the threshold, 0 at and below;
    snntorch/surrogate.py ``Heaviside.backward``: ``grad_output * out``). P = scale max(x, 0). (S3)""",
    spike_gate_primitive, spike_gate_derivative, "scale", 1.0)
SpikeRateEscape = _surrogate_class(
    "SpikeRateEscape", "spike_rate_escape",
    """snnTorch ``spike_rate_escape(beta, slope)``: sigma'(x) = slope exp(-beta |x - 1|)
    (snntorch/surrogate.py ``SpikeRateEscape.backward``). P: its antiderivative, 0 at -inf. (S4)""",
    spike_rate_escape_primitive, spike_rate_escape_derivative, "slope", 25.0, "beta", 1.0, 0.0, True)
LeakyGate = _surrogate_class(
    "LeakyGate", "leaky_spike_operator",
    """snnTorch ``LSO(slope)``: sigma'(x) = 1 above the threshold, slope at and below
    (snntorch/surrogate.py ``LeakySpikeOperator.backward``). P = 1/2 + x or 1/2 + slope x. (S5)""",
    leaky_gate_primitive, leaky_gate_derivative, "slope", 0.1, low_open=False)
SparseFastSigmoid = _surrogate_class(
    "SparseFastSigmoid", "sparse_fast_sigmoid",
    """snnTorch ``SFS(slope, B)``: sigma'(x) = 1 / (slope |x| + 1)^2 for x > B, else 0
    (snntorch/surrogate.py ``SparseFastSigmoid.backward``). P = F(max(x, B)) - F(B),
    F(z) = z / (1 + slope |z|). (S6)""",
    sparse_fast_sigmoid_primitive, sparse_fast_sigmoid_derivative, "slope", 25.0, "floor", 1.0)
PiecewiseQuadratic = _surrogate_class(
    "PiecewiseQuadratic", "piecewise_quadratic",
    """SpikingJelly ``PiecewiseQuadratic(alpha)``: sigma'(x) = alpha - alpha^2 |x| for
    |x| <= 1/alpha, else 0 (spikingjelly/activation_based/surrogate.py
    ``piecewise_quadratic_backward``). P = 1/2 + sign(x)(alpha a - alpha^2 a^2 / 2),
    a = min(|x|, 1/alpha). (S7)""",
    piecewise_quadratic_primitive, piecewise_quadratic_derivative, "alpha", 1.0)
PiecewiseExp = _surrogate_class(
    "PiecewiseExp", "piecewise_exp",
    """SpikingJelly ``PiecewiseExp(alpha)``: sigma'(x) = alpha/2 exp(-alpha |x|)
    (``piecewise_exp_backward``). P = exp(alpha x)/2 below 0, 1 - exp(-alpha x)/2 above. (S8)""",
    piecewise_exp_primitive, piecewise_exp_derivative, "alpha", 1.0)
SoftSign = _surrogate_class(
    "SoftSign", "soft_sign",
    """SpikingJelly ``SoftSign(alpha)``: sigma'(x) = 1 / (2 alpha (1/alpha + |x|)^2)
    (``soft_sign_backward``). P = 1/2 + x / (2 (1/alpha + |x|)). (S9)""",
    soft_sign_primitive, soft_sign_derivative, "alpha", 2.0)
Erf = _surrogate_class(
    "Erf", "erf",
    """SpikingJelly ``Erf(alpha)``: sigma'(x) = alpha / sqrt(pi) exp(-(alpha x)^2)
    (``erf_backward``). P = (1 + erf(alpha x)) / 2. (S10)""",
    erf_primitive, erf_derivative, "alpha", 2.0)
PiecewiseLeakyReLU = _surrogate_class(
    "PiecewiseLeakyReLU", "piecewise_leaky_relu",
    """SpikingJelly ``PiecewiseLeakyReLU(w, c)``: sigma'(x) = 1/(2w) for |x| < w, else c
    (``piecewise_leaky_relu_backward``). P: linear pieces, P(0) = 1/2. (S11)""",
    piecewise_leaky_relu_primitive, piecewise_leaky_relu_derivative, "w", 1.0, "c", 0.01, 0.0)
LogAbs = _surrogate_class(
    "LogAbs", "nonzero_sign_log_abs",
    """SpikingJelly ``NonzeroSignLogAbs(alpha)`` (forward: heaviside): sigma'(x) =
    1 / (1/alpha + |x|) (``nonzero_sign_log_abs_backward``). P = 1/2 + sign(x) log(1 + alpha |x|). (S12)""",
    log_abs_primitive, log_abs_derivative, "alpha", 1.0)
S2NN = _surrogate_class(
    "S2NN", "s2nn",
    """SpikingJelly ``S2NN(alpha, beta)``: sigma'(x) = alpha g(alpha x)(1 - g(alpha x)) below 0,
    beta / (x + 1) at and above (``s2nn.backward``). P = g(alpha x) below 0, 1/2 + beta
    log(1 + x) above. (S13)""",
    s2nn_primitive, s2nn_derivative, "alpha", 4.0, "beta", 1.0, 0.0, True)
QPseudoSpike = _surrogate_class(
    "QPseudoSpike", "q_pseudo_spike",
    """SpikingJelly ``QPseudoSpike(alpha)``, alpha > 1: sigma'(x) = (1 + 2|x|/(alpha - 1))^-alpha
    (``q_pseudo_spike.backward``). P = 1/2 + sign(x)(1 - u^(1 - alpha))/2, u = 1 + 2|x|/(alpha - 1). (S14)""",
    q_pseudo_spike_primitive, q_pseudo_spike_derivative, "alpha", 2.0)
LeakyKReLU = _surrogate_class(
    "LeakyKReLU", "leaky_k_relu",
    """SpikingJelly ``LeakyKReLU(leak, k)``: sigma'(x) = k at and above 0, leak below
    (``leaky_k_relu_backward``). P = 1/2 + k x or 1/2 + leak x. (S15)""",
    leaky_k_relu_primitive, leaky_k_relu_derivative, "k", 1.0, "leak", 0.0, 0.0)
HeaviTanh = _surrogate_class(
    "HeaviTanh", "heavi_tanh",
    """Norse ``method="tanh"``: sigma'(x) = 1 - tanh(k x)^2 (no factor k;
    norse/torch/functional/threshold.py ``HeaviTanh.backward``). P = 1/2 + tanh(k x)/k. (S16)""",
    heavi_tanh_primitive, heavi_tanh_derivative, "k", 100.0)
Circ = _surrogate_class(
    "Circ", "circ",
    """Norse ``method="circ"``: sigma'(x) = alpha^3 / (alpha^2 + x^2)^(3/2) (``HeaviCirc.backward``:
    2 alpha (1/(2 sqrt(r)) - x^2/(2 r^1.5)), r = alpha^2 + x^2). P = 1/2 + alpha x / sqrt(r). (S17)""",
    circ_primitive, circ_derivative, "alpha", 100.0)
HeaviErfc = _surrogate_class(
    "HeaviErfc", "heavi_erfc",
    """Norse ``method="heavi_erfc"``: sigma'(x) = 2/sqrt(pi) exp(-(k x)^2) (no factor k, positive;
    ``HeaviErfc.backward``; sqrt(pi) rounded to float32 as Norse's is, ``NORSE_SQRT_PI``).
    P = 1/2 + erf(k x)/k (times sqrt(pi) / NORSE_SQRT_PI). (S18)""",
    heavi_erfc_primitive, heavi_erfc_derivative, "k", 100.0)

PEER_SURROGATES = (StraightThrough, SignedConstant, SpikeGate, SpikeRateEscape, LeakyGate,
                   SparseFastSigmoid, PiecewiseQuadratic, PiecewiseExp, SoftSign, Erf,
                   PiecewiseLeakyReLU, LogAbs, S2NN, QPseudoSpike, LeakyKReLU, HeaviTanh, Circ,
                   HeaviErfc)

_REGISTRY = {cls.name: cls for cls in (ATan, Sigmoid, Rectangular, SuperSpike,
                                       SpikingJellySuperSpike, Triangle) + PEER_SURROGATES}
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
