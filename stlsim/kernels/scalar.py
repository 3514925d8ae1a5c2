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

Types. Numba types a float literal (and a Python float argument such as a surrogate's
``alpha``) as float64, and float32 meeting float64 is float64: a literal written plainly
would make a float32 kernel compute in float64, at half the vector width and with float64
divisions (a plain Numba loop of the atan backward, T 8, B 128, N 800: 1.3 ms against
0.2 ms in float32). NumPy's rule for a Python number meeting
a float32 array is the opposite (NEP 50: the number becomes float32). So the functions
the default kernels run (the general steps, the paper's steps, the spike and the atan
surrogate) write each such constant as ``cast_like(c, x)``: plain Python returns ``c``
(NumPy then applies its rule), Numba casts ``c`` to the type of ``x``. With the
operations in the reference's order, a float32 kernel then rounds like the NumPy
reference, step for step, except where LLVM fuses a product and a sum into one
multiply-add (it does, without ``fastmath``: the last bit of some results); float64 is
unchanged. The other surrogates still evaluate in float64, and ``surrogate_primitive``
and ``surrogate_derivative`` cast what they return to the type of ``x``, as the
reference rounds its array to the dtype. The recursion (L2)
``m = tau * v + I`` rounds exactly like NumPy in both dtypes, so spike decisions (L3)
agree bitwise with the NumPy reference. The kernels keep ``v`` in a dtype array between
steps.

Surrogates are selected by an integer code (``SURROGATE_CODES``) so that a kernel can
take it as an argument; the branch is loop-invariant. A surrogate has one or two shape
parameters, ``param`` and ``param2``; every function below takes both (``param2``
defaults to 0.0 and is read by the two-parameter surrogates only, codes 19-23).
"""
import math
import struct

__all__ = [
    "ATAN", "SIGMOID", "RECTANGULAR", "SUPERSPIKE", "SUPERSPIKE_SJ", "TRIANGLE",
    "SURROGATE_CODES", "NORSE_SQRT_PI", "peer_primitive", "peer_derivative",
    "atan_primitive", "atan_derivative", "sigmoid_primitive", "sigmoid_derivative",
    "rectangular_primitive", "rectangular_derivative", "superspike_primitive",
    "superspike_derivative", "surrogate_primitive", "surrogate_derivative", "heaviside",
    "spike", "reset", "lif_forward_step", "lif_backward_step", "JITABLE", "HARD", "SOFT",
    "NO_RESET", "AFTER_LEAK", "RESET_CODES", "fires", "lif_forward_step_general",
    "lif_backward_step_general", "two_parameter_primitive", "two_parameter_derivative",
    "cast_like",
]

ATAN, SIGMOID, RECTANGULAR, SUPERSPIKE, SUPERSPIKE_SJ, TRIANGLE = 0, 1, 2, 3, 4, 5
# The peers' one-parameter surrogates, docs/model.md (S1)-(S18) (stlsim.surrogate names).
(STRAIGHT_THROUGH, SIGNED_CONSTANT, SPIKE_GATE, LEAKY_GATE, PIECEWISE_QUADRATIC, PIECEWISE_EXP,
 SOFT_SIGN, ERF, LOG_ABS, Q_PSEUDO_SPIKE, HEAVI_TANH, CIRC, HEAVI_ERFC) = range(6, 19)
# ... and their two-parameter ones, (S4), (S6), (S11), (S13), (S15): the second parameter is
# ``param2``, a run-time argument like ``param`` (see ``two_parameter_primitive``).
SPIKE_RATE_ESCAPE, SPARSE_FAST_SIGMOID, PIECEWISE_LEAKY_RELU, S2NN, LEAKY_K_RELU = range(19, 24)
SURROGATE_CODES = {"atan": ATAN, "sigmoid": SIGMOID, "rectangular": RECTANGULAR,
                   "superspike": SUPERSPIKE, "superspike_sj": SUPERSPIKE_SJ, "triangle": TRIANGLE,
                   "straight_through": STRAIGHT_THROUGH, "snntorch_triangular": SIGNED_CONSTANT,
                   "spike_gate": SPIKE_GATE, "leaky_spike_operator": LEAKY_GATE,
                   "piecewise_quadratic": PIECEWISE_QUADRATIC, "piecewise_exp": PIECEWISE_EXP,
                   "soft_sign": SOFT_SIGN, "erf": ERF, "nonzero_sign_log_abs": LOG_ABS,
                   "q_pseudo_spike": Q_PSEUDO_SPIKE, "heavi_tanh": HEAVI_TANH, "circ": CIRC,
                   "heavi_erfc": HEAVI_ERFC, "spike_rate_escape": SPIKE_RATE_ESCAPE,
                   "sparse_fast_sigmoid": SPARSE_FAST_SIGMOID,
                   "piecewise_leaky_relu": PIECEWISE_LEAKY_RELU, "s2nn": S2NN,
                   "leaky_k_relu": LEAKY_K_RELU}


def _float32(value):
    """``value`` rounded to float32 (without numpy)."""
    return struct.unpack("f", struct.pack("f", value))[0]


# Norse's sqrt(pi) is a float32 tensor's: sqrt of pi rounded to float32, rounded to float32
# (stlsim.surrogate.NORSE_SQRT_PI; a float64 sqrt rounds correctly to float32 here).
NORSE_SQRT_PI = _float32(math.sqrt(_float32(math.pi)))


def cast_like(value, x):
    """``value`` (a Python float, or a float64 a surrogate computed) in the float type of
    ``x``: NumPy's rule for a number meeting an array. Here it returns ``value`` unchanged,
    and NumPy applies the rule; in Numba code (``_jit.register_scalar``) it is a cast, so a
    float32 kernel stays in float32 (module docstring, Types)."""
    return value


# --- surrogates: (primitive P, derivative P' = sigma') pairs, spec "Surrogate gradient" --

def atan_primitive(x, alpha):
    return (math.atan(cast_like(0.5 * math.pi * alpha, x) * x) / cast_like(math.pi, x)
            + cast_like(0.5, x))


def atan_derivative(x, alpha):
    # Rational: the default surrogate needs no exp (Numba has no vector exp here).
    z = cast_like(0.5 * math.pi * alpha, x) * x
    return cast_like(0.5 * alpha, x) / (cast_like(1.0, x) + z * z)


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


def superspike_sj_primitive(x, alpha):
    return 0.5 + alpha * x / (1.0 + abs(x))


def superspike_sj_derivative(x, alpha):
    d = 1.0 + abs(x)
    return alpha / (d * d)


def triangle_primitive(x, alpha):
    a = min(abs(x), 1.0)
    q = (1.0 - (1.0 - a) * (1.0 - a)) * 0.5
    if x < 0:
        q = -q
    return 0.5 + alpha * q


def triangle_derivative(x, alpha):
    return alpha * max(1.0 - abs(x), 0.0)


def _sign(x):
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return 0.0


# (S1)-(S18): transcriptions of stlsim.surrogate's NumPy pairs, same operations in order.

def peer_primitive(kind, x, a):
    """P(x) of a peer surrogate (codes STRAIGHT_THROUGH .. HEAVI_ERFC)."""
    if kind == STRAIGHT_THROUGH:
        return 0.5 + a * x                                                  # (S1)
    if kind == SIGNED_CONSTANT:
        return 0.5 - a * abs(x)                                             # (S2)
    if kind == SPIKE_GATE:
        return a * max(x, 0.0)                                              # (S3)
    if kind == LEAKY_GATE:
        return 0.5 + (x if x > 0 else a * x)                                # (S5)
    if kind == PIECEWISE_QUADRATIC:                                         # (S7)
        q = min(abs(x), 1.0 / a)
        return 0.5 + _sign(x) * (a * q - 0.5 * a * a * q * q)
    if kind == PIECEWISE_EXP:                                               # (S8)
        half = 0.5 * math.exp(-a * abs(x))
        return half if x < 0 else 1.0 - half
    if kind == SOFT_SIGN:
        return 0.5 + 0.5 * x / (1.0 / a + abs(x))                           # (S9)
    if kind == ERF:
        return 0.5 + 0.5 * math.erf(a * x)                                  # (S10)
    if kind == LOG_ABS:
        return 0.5 + _sign(x) * math.log1p(a * abs(x))                      # (S12)
    if kind == Q_PSEUDO_SPIKE:                                              # (S14)
        u = 1.0 + 2.0 / (a - 1.0) * abs(x)
        return 0.5 + _sign(x) * 0.5 * (1.0 - u ** (1.0 - a))
    if kind == HEAVI_TANH:
        return 0.5 + math.tanh(a * x) / a                                   # (S16)
    if kind == CIRC:
        return 0.5 + a * x / math.sqrt(a * a + x * x)                       # (S17)
    return 0.5 + (math.sqrt(math.pi) / NORSE_SQRT_PI) * math.erf(a * x) / a   # (S18)


def peer_derivative(kind, x, a):
    """sigma'(x) of a peer surrogate (codes STRAIGHT_THROUGH .. HEAVI_ERFC)."""
    if kind == STRAIGHT_THROUGH:
        return a                                                            # (S1)
    if kind == SIGNED_CONSTANT:
        return -a if x >= 0 else a                                          # (S2)
    if kind == SPIKE_GATE:
        return a if x > 0 else 0.0                                          # (S3)
    if kind == LEAKY_GATE:
        return 1.0 if x > 0 else a                                          # (S5)
    if kind == PIECEWISE_QUADRATIC:                                         # (S7)
        return 0.0 if abs(x) > 1.0 / a else a - a * a * abs(x)
    if kind == PIECEWISE_EXP:
        return 0.5 * a * math.exp(-a * abs(x))                              # (S8)
    if kind == SOFT_SIGN:                                                   # (S9)
        d = 1.0 / a + abs(x)
        return 1.0 / (2.0 * a * d * d)
    if kind == ERF:                                                         # (S10)
        z = a * x
        return (a / math.sqrt(math.pi)) * math.exp(-z * z)
    if kind == LOG_ABS:
        return 1.0 / (1.0 / a + abs(x))                                     # (S12)
    if kind == Q_PSEUDO_SPIKE:
        return (1.0 + 2.0 / (a - 1.0) * abs(x)) ** (-a)                     # (S14)
    if kind == HEAVI_TANH:                                                  # (S16)
        t = math.tanh(x * a)
        return 1.0 - t * t
    if kind == CIRC:                                                        # (S17)
        r = a * a + x * x
        return a ** 3 / (r * math.sqrt(r))
    z = a * x                                                               # (S18)
    return 2.0 * math.exp(-z * z) / NORSE_SQRT_PI


# (S4), (S6), (S11), (S13), (S15), the pairs with two shape parameters ``a``, ``b`` (in the
# order of ``Surrogate.values``). Why ``b`` is a run-time argument rather than a constant
# compiled into the kernel (as the code is): the code selects which code runs, and a
# constant one lets LLVM drop the other branches; a parameter only enters the arithmetic, so
# as an argument it costs nothing and a new value (a sweep over it) needs no new compile.
# The NumPy pairs evaluate both sides of a ``np.where``; here one branch runs, with the
# operations of the side NumPy keeps (its clamp, e.g. ``min(shifted, 0)``, is the identity
# on that side and is dropped).

def two_parameter_primitive(kind, x, a, b):
    """P(x) of a two-parameter peer surrogate (codes SPIKE_RATE_ESCAPE .. LEAKY_K_RELU)."""
    if kind == SPIKE_RATE_ESCAPE:                                           # (S4) slope, beta
        shifted = x - 1.0
        if shifted < 0:
            return (a / b) * math.exp(b * shifted)
        return (a / b) * (2.0 - math.exp(-b * shifted))
    if kind == SPARSE_FAST_SIGMOID:                                         # (S6) slope, floor
        z = max(x, b)
        return z / (1.0 + a * abs(z)) - b / (1.0 + a * abs(b))
    if kind == PIECEWISE_LEAKY_RELU:                                        # (S11) w, c
        if x >= a:
            return 1.0 + b * (x - a)
        if x <= -a:
            return b * (x + a)
        return x / (2.0 * a) + 0.5
    if kind == S2NN:                                                        # (S13) alpha, beta
        if x < 0:
            return sigmoid_primitive(x, a)
        return 0.5 + b * math.log1p(x)
    return 0.5 + (a * x if x >= 0 else b * x)                               # (S15) k, leak


def two_parameter_derivative(kind, x, a, b):
    """sigma'(x) of a two-parameter peer surrogate (codes SPIKE_RATE_ESCAPE .. LEAKY_K_RELU)."""
    if kind == SPIKE_RATE_ESCAPE:
        return a * math.exp(-b * abs(x - 1.0))                              # (S4)
    if kind == SPARSE_FAST_SIGMOID:                                         # (S6)
        d = a * abs(x) + 1.0
        return 1.0 / (d * d) if x > b else 0.0
    if kind == PIECEWISE_LEAKY_RELU:
        return 1.0 / (2.0 * a) if abs(x) < a else b                         # (S11)
    if kind == S2NN:                                                        # (S13)
        if x < 0:
            g = sigmoid_primitive(x, a)
            return a * g * (1.0 - g)
        return b / (x + 1.0)
    return a if x >= 0 else b                                               # (S15)


def surrogate_primitive(kind, x, param, param2=0.0):
    """P(x) of the surrogate with code ``kind`` and shape parameters ``param``, ``param2``,
    in the type of ``x`` (every branch cast, so that Numba's unified type is that of ``x``;
    the reference rounds to the array's dtype the same way)."""
    if kind == ATAN:
        return cast_like(atan_primitive(x, param), x)
    if kind == SIGMOID:
        return cast_like(sigmoid_primitive(x, param), x)
    if kind == RECTANGULAR:
        return cast_like(rectangular_primitive(x, param), x)
    if kind == SUPERSPIKE_SJ:
        return cast_like(superspike_sj_primitive(x, param), x)
    if kind == TRIANGLE:
        return cast_like(triangle_primitive(x, param), x)
    if kind >= SPIKE_RATE_ESCAPE:
        return cast_like(two_parameter_primitive(kind, x, param, param2), x)
    if kind >= STRAIGHT_THROUGH:
        return cast_like(peer_primitive(kind, x, param), x)
    return cast_like(superspike_primitive(x, param), x)


def surrogate_derivative(kind, x, param, param2=0.0):
    """sigma'(x) = P'(x) of the surrogate with code ``kind``, in the type of ``x`` (as above)."""
    if kind == ATAN:
        return cast_like(atan_derivative(x, param), x)
    if kind == SIGMOID:
        return cast_like(sigmoid_derivative(x, param), x)
    if kind == RECTANGULAR:
        return cast_like(rectangular_derivative(x, param), x)
    if kind == SUPERSPIKE_SJ:
        return cast_like(superspike_sj_derivative(x, param), x)
    if kind == TRIANGLE:
        return cast_like(triangle_derivative(x, param), x)
    if kind >= SPIKE_RATE_ESCAPE:
        return cast_like(two_parameter_derivative(kind, x, param, param2), x)
    if kind >= STRAIGHT_THROUGH:
        return cast_like(peer_derivative(kind, x, param), x)
    return cast_like(superspike_derivative(x, param), x)


def heaviside(x):
    if x >= 0:                                   # (L3) H(0) = 1: spike AT threshold
        return cast_like(1.0, x)
    return cast_like(0.0, x)


def spike(x, smooth, kind, param, param2=0.0):
    """Forward nonlinearity: H(x), or P(x) in smooth mode."""
    if smooth:
        return surrogate_primitive(kind, x, param, param2)
    return heaviside(x)


def reset(m, s, theta, hard):
    """Membrane after the spike: (L4h) or (L4s)."""
    if hard:
        return (cast_like(1.0, m) - s) * m       # (L4h)
    return m - s * theta                         # (L4s)


# --- one neuron, one time step -------------------------------------------------------

def lif_forward_step(current, v_prev, theta, tau, hard, smooth, kind, param, param2=0.0):
    """(L2)-(L4) for one neuron at one step. Returns ``(m, s, v)``."""
    m = tau * v_prev + current                   # (L2)
    s = spike(m - theta, smooth, kind, param, param2)    # (L3)
    v = reset(m, s, theta, hard)                 # (L4)
    return m, s, v


def lif_backward_step(e, delta_next, m, s, theta, tau, hard, detach, kind, param, param2=0.0):
    """(B1)-(B3) and the (B5) term for one neuron at one step, reverse time.

    ``e`` = dL/ds_t from above, ``delta_next`` = dL/dm_{t+1} (0 after the last step).
    Returns ``(delta, theta_term)``: delta_t = dL/dm_t, and the amount the kernel
    subtracts from dL/dtheta (``grad_theta -= theta_term``, as the reference does).
    """
    grad_v = tau * delta_next                    # (B1) eps_t
    dS_dx = surrogate_derivative(kind, m - theta, param, param2)
    if hard:
        g = e if detach else e - m * grad_v      # (B2h)
        delta = g * dS_dx + grad_v * (cast_like(1.0, m) - s)   # (B3h)
        theta_term = g * dS_dx                   # (B5)
    else:
        g = e if detach else e - theta * grad_v  # (B2s)
        delta = g * dS_dx + grad_v               # (B3s)
        theta_term = g * dS_dx + s * grad_v      # (B5) soft: direct term
    return delta, theta_term


# --- the conventions of docs/model.md Section 8 ------------------------------------------
# ``lif_forward_step`` / ``lif_backward_step`` above are the paper's form, which the event
# and CUDA kernels implement. The clock engine's CPU kernels run the general step below;
# with every option off it performs the same operations in the same order as the paper's
# form (``tests/test_numba_backend.py`` checks that on a grid of inputs).

HARD, SOFT, NO_RESET, AFTER_LEAK = 0, 1, 2, 3
RESET_CODES = {"hard": HARD, "soft": SOFT, "none": NO_RESET, "subtract_after_leak": AFTER_LEAK}


def fires(x, strict):
    """H(x) with H(0) = 1 (L3), or H'(x) with H'(0) = 0 when ``strict`` (L3')."""
    if strict:
        if x > 0:
            return cast_like(1.0, x)
        return cast_like(0.0, x)
    if x >= 0:
        return cast_like(1.0, x)
    return cast_like(0.0, x)


def lif_forward_step_general(current, v_prev, s_prev, theta, tau, leak, gain, v_reset, reset,
                             strict, has_leak, has_gain, has_reset_potential, smooth, kind,
                             param, param2=0.0):
    """(L2g), (L2a), (L3)/(L3'), (L4h)/(L4s)/(L4n) for one neuron at one step.

    ``leak`` is (1 - tau) v_leak, computed by the caller as the NumPy reference does;
    ``s_prev`` the spike of the step before (read under AFTER_LEAK only). The ``has_*``
    flags skip terms that are zero, as the reference does. Returns ``(m, s, v)``.
    """
    m = tau * v_prev                                     # (L2)
    if has_leak:
        m = m + leak                                     # (L2g) leak potential
    if has_gain:
        m = m + cast_like(gain, current) * current       # (L2g) input gain
    else:
        m = m + current
    if reset == AFTER_LEAK:
        m = m - s_prev * theta                           # (L2a)
    if smooth:
        s = surrogate_primitive(kind, m - theta, param, param2)
    else:
        s = fires(m - theta, strict)                     # (L3), (L3')
    if reset == HARD:
        v = (cast_like(1.0, m) - s) * m                  # (L4h)
        if has_reset_potential:
            v = v + s * cast_like(v_reset, m)            # (L4h) reset potential
    elif reset == SOFT:
        v = m - s * theta                                # (L4s)
    else:
        v = m                                            # (L4n), (L2a)
    return m, s, v


def lif_backward_step_general(e, delta_next, m, s, theta, tau, gain, v_reset, reset, detach,
                              has_gain, has_reset_potential, kind, param, param2=0.0):
    """(B1)-(B3), (B2a), (B3g) and the (B5)/(B5a) term for one neuron at one step.

    Returns ``(delta, grad_current, theta_term)``: delta_t = dL/dm_t (carried to the
    step before), dL/dI_t = r delta_t, and the amount subtracted from dL/dtheta.
    """
    grad_v = tau * delta_next                            # (B1) eps_t
    dS_dx = surrogate_derivative(kind, m - theta, param, param2)
    if reset == HARD:
        if detach:
            g = e
        elif has_reset_potential:
            g = e + (cast_like(v_reset, m) - m) * grad_v   # (B2h) reset potential
        else:
            g = e - m * grad_v                           # (B2h)
        delta = g * dS_dx + grad_v * (cast_like(1.0, m) - s)   # (B3h)
        theta_term = g * dS_dx                           # (B5)
    elif reset == SOFT:
        g = e if detach else e - theta * grad_v          # (B2s)
        delta = g * dS_dx + grad_v                       # (B3s)
        theta_term = g * dS_dx + s * grad_v              # (B5) soft: direct term
    else:
        g = e
        if reset == AFTER_LEAK and not detach:
            g = e - theta * delta_next                   # (B2a)
        delta = g * dS_dx + grad_v                       # (B3n)
        if reset == AFTER_LEAK:
            theta_term = g * dS_dx + s * delta_next      # (B5), (B5a)
        else:
            theta_term = g * dS_dx                       # (B5)
    if has_gain:
        return delta, cast_like(gain, delta) * delta, theta_term   # (B3g)
    return delta, delta, theta_term


# Everything a kernel may call; registered for Numba by ``kernels._jit.register_scalar``.
JITABLE = (
    atan_primitive, atan_derivative, sigmoid_primitive, sigmoid_derivative,
    rectangular_primitive, rectangular_derivative, superspike_primitive,
    superspike_derivative, superspike_sj_primitive, superspike_sj_derivative,
    triangle_primitive, triangle_derivative, _sign, peer_primitive, peer_derivative,
    two_parameter_primitive, two_parameter_derivative, surrogate_primitive, surrogate_derivative, heaviside, spike,
    reset, lif_forward_step, lif_backward_step, fires, lif_forward_step_general,
    lif_backward_step_general,
)
# ``cast_like`` is not in JITABLE: ``_jit.register_scalar`` gives it its own overload.
