"""Scalar math of the kernels, written once: per-neuron forward and backward steps.

Plain Python functions of scalars, using only ``math`` and arithmetic (no numpy, no
arrays, no numba import), so that one definition serves three compilers:

* Python itself (the functions run as they are; the tests call them on floats);
* ``numba.njit`` for the CPU kernels (``stlsim.kernels.cpu``);
* ``numba.cuda.jit`` for the GPU kernels.

``stlsim.kernels._jit.register_scalar()`` registers every function listed in
``JITABLE`` with ``numba.extending.register_jitable``: after that, CPU *and* CUDA
kernels may call them by name, and the calls between them resolve too (a plain
``njit`` of one function would not see the others). Each function is a faithful
transcription of the NumPy reference (``stlsim.surrogate``, ``engines.clock``,
``grad.bptt``), same operations in the same order, so float64 results agree to the
last bit or two (libm ``atan``/``exp`` may differ by an ulp).

Types. Numba types float literals as float64, so for float32 data the surrogate math
below is evaluated in float64 and rounded when the kernel stores it. The recursion
(L2) ``m = tau * v + I`` has no literal: with ``tau``, ``v`` and ``I`` of the storage
dtype it rounds exactly like NumPy, so spike decisions (L3) agree bitwise with the
NumPy reference in float32 too. The kernels keep ``v`` in a dtype array between steps.

Surrogates are selected by an integer code (``SURROGATE_CODES``) so that a kernel can
take it as an argument; the branch is loop-invariant.
"""
import math

__all__ = [
    "ATAN", "SIGMOID", "RECTANGULAR", "SUPERSPIKE", "SURROGATE_CODES",
    "atan_primitive", "atan_derivative", "sigmoid_primitive", "sigmoid_derivative",
    "rectangular_primitive", "rectangular_derivative", "superspike_primitive",
    "superspike_derivative", "surrogate_primitive", "surrogate_derivative", "heaviside",
    "spike", "reset", "lif_forward_step", "lif_backward_step", "JITABLE",
]

ATAN, SIGMOID, RECTANGULAR, SUPERSPIKE = 0, 1, 2, 3
SURROGATE_CODES = {"atan": ATAN, "sigmoid": SIGMOID, "rectangular": RECTANGULAR,
                   "superspike": SUPERSPIKE}


# --- surrogates: (primitive P, derivative P' = sigma') pairs, spec "Surrogate gradient" --

def atan_primitive(x, alpha):
    return math.atan(0.5 * math.pi * alpha * x) / math.pi + 0.5


def atan_derivative(x, alpha):
    # Rational: the default surrogate needs no exp (Numba has no vector exp here).
    z = 0.5 * math.pi * alpha * x
    return (0.5 * alpha) / (1.0 + z * z)


def sigmoid_primitive(x, alpha):
    # Written with exp(-|z|) so that it never overflows.
    z = alpha * x
    ez = math.exp(-abs(z))
    if z >= 0:
        return 1.0 / (1.0 + ez)
    return ez / (1.0 + ez)


def sigmoid_derivative(x, alpha):
    g = sigmoid_primitive(x, alpha)
    return alpha * g * (1.0 - g)


def rectangular_primitive(x, width):
    y = x / width + 0.5
    if y < 0.0:
        return 0.0
    if y > 1.0:
        return 1.0
    return y


def rectangular_derivative(x, width):
    if abs(x) < 0.5 * width:
        return 1.0 / width
    return 0.0


def superspike_primitive(x, beta):
    return 0.5 + x / (1.0 + beta * abs(x))


def superspike_derivative(x, beta):
    d = 1.0 + beta * abs(x)
    return 1.0 / (d * d)


def surrogate_primitive(kind, x, param):
    """P(x) of the surrogate with code ``kind`` and shape parameter ``param``."""
    if kind == ATAN:
        return atan_primitive(x, param)
    if kind == SIGMOID:
        return sigmoid_primitive(x, param)
    if kind == RECTANGULAR:
        return rectangular_primitive(x, param)
    return superspike_primitive(x, param)


def surrogate_derivative(kind, x, param):
    """sigma'(x) = P'(x) of the surrogate with code ``kind``."""
    if kind == ATAN:
        return atan_derivative(x, param)
    if kind == SIGMOID:
        return sigmoid_derivative(x, param)
    if kind == RECTANGULAR:
        return rectangular_derivative(x, param)
    return superspike_derivative(x, param)


def heaviside(x):
    if x >= 0:                                   # (L3) H(0) = 1: spike AT threshold
        return 1.0
    return 0.0


def spike(x, smooth, kind, param):
    """Forward nonlinearity: H(x), or P(x) in smooth mode."""
    if smooth:
        return surrogate_primitive(kind, x, param)
    return heaviside(x)


def reset(m, s, theta, hard):
    """Membrane after the spike: (L4h) or (L4s)."""
    if hard:
        return (1 - s) * m                       # (L4h)
    return m - s * theta                         # (L4s)


# --- one neuron, one time step -------------------------------------------------------

def lif_forward_step(current, v_prev, theta, tau, hard, smooth, kind, param):
    """(L2)-(L4) for one neuron at one step. Returns ``(m, s, v)``."""
    m = tau * v_prev + current                   # (L2)
    s = spike(m - theta, smooth, kind, param)    # (L3)
    v = reset(m, s, theta, hard)                 # (L4)
    return m, s, v


def lif_backward_step(e, delta_next, m, s, theta, tau, hard, detach, kind, param):
    """(B1)-(B3) and the (B5) term for one neuron at one step, reverse time.

    ``e`` = dL/ds_t from above, ``delta_next`` = dL/dm_{t+1} (0 after the last step).
    Returns ``(delta, theta_term)``: delta_t = dL/dm_t, and the amount the kernel
    subtracts from dL/dtheta (``grad_theta -= theta_term``, as the reference does).
    """
    grad_v = tau * delta_next                    # (B1) eps_t
    dS_dx = surrogate_derivative(kind, m - theta, param)
    if hard:
        g = e if detach else e - m * grad_v      # (B2h)
        delta = g * dS_dx + grad_v * (1 - s)     # (B3h)
        theta_term = g * dS_dx                   # (B5)
    else:
        g = e if detach else e - theta * grad_v  # (B2s)
        delta = g * dS_dx + grad_v               # (B3s)
        theta_term = g * dS_dx + s * grad_v      # (B5) soft: direct term
    return delta, theta_term


# Everything a kernel may call; registered for Numba by ``kernels._jit.register_scalar``.
JITABLE = (
    atan_primitive, atan_derivative, sigmoid_primitive, sigmoid_derivative,
    rectangular_primitive, rectangular_derivative, superspike_primitive,
    superspike_derivative, surrogate_primitive, surrogate_derivative, heaviside, spike,
    reset, lif_forward_step, lif_backward_step,
)
