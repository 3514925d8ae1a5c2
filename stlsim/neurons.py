"""The LIF neuron of ``docs/model.md``: parameters and one pure time step.

``lif_step`` is the readable definition of (L2)-(L4) and of the conventions of
Section 8 (input gain, leak and reset potentials, H(0), the reset variants); the
engines loop over time and the BPTT in ``stlsim.grad.bptt`` runs the same statements
backwards. Named settings of other frameworks: ``stlsim.conventions``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ._checks import check_choice, check_real, fail
from .conventions import get as get_convention

__all__ = ["LIF", "Adaptation", "RESETS", "NO_DELAY_RESETS", "lif_step", "after_reset",
           "initial_spikes", "reset_carry", "reset_carries", "neuron_of",
           "adaptation_arrays", "adaptation_states",
           "replace_unchecked", "synaptic_current"]

RESETS = ("hard", "soft", "subtract_after_leak", "none", "zero_after_leak", "subtract_no_delay",
          "zero_no_delay")
NO_DELAY_RESETS = ("subtract_no_delay", "zero_no_delay")     # (L2i), (L4i): snnTorch reset_delay=False


def _check_tau(value, name="tau", owner="LIF", low=0.0, high=1.0):
    """A real in [low, high] (a decay factor by default): a float, or a read-only array
    (one per neuron). ``low``/``high`` None: any finite real."""
    if np.ndim(value) == 0:
        return check_real(value, name, low=low, high=high, owner=owner)
    what = "decay factors in [0, 1]" if (low, high) == (0.0, 1.0) else "finite reals"
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(name, f"a float or an array of {what}", type(value).__name__, owner,
                   TypeError) from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or (low is not None and arr.min() < low) \
            or (high is not None and arr.max() > high):
        got = f"values in [{arr.min()}, {arr.max()}]" if arr.size else "an empty array"
        raise fail(name, f"{what} (finite)", got, owner)
    arr.flags.writeable = False
    return arr


PER_NEURON_FIELDS = ("v_leak", "v_reset", "v_init", "alpha_syn")   # besides tau


def nonzero(value) -> bool:
    """Whether a neuron value (a float, or one per neuron) is anywhere nonzero: the
    optional terms of (L2g), (L4h) are skipped, not added as zeros, when it is not."""
    return bool(np.any(np.asarray(value) != 0.0))


def _equal_fields(a, b) -> bool:
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))


def _hashable(value):
    return tuple(value.tolist()) if isinstance(value, np.ndarray) else value


@dataclass(frozen=True, eq=False)
class Adaptation:
    """An adaptive threshold (LSNN / ALIF): (L3v), (L5a) of ``docs/model.md`` Section 10.

    The threshold at step t is ``theta + beta * a_t``, with ``a_{t+1} = rho * a_t + s_t``
    and ``a_1 = 0`` per neuron: each spike raises the neuron's threshold from the next
    step on, and the rise decays by ``rho`` per step.

    Parameters
    ----------
    beta : float, or an array over the layer's neurons
        Threshold rise per spike. Default 1.8 (Bellec et al. 2018; Norse's default).
    rho : float in [0, 1], or an array over the layer's neurons
        Decay factor of the adaptation state per step. Default 0.95.
    learn_beta, learn_rho : bool
        Train beta ("{layer}.adapt_beta") or rho ("{layer}.adapt_rho", clamped to [0, 1]
        in the forward), one value per neuron; they are threshold parameters (TL and STL
        train them at the threshold learning rate, SL keeps them fixed).
    detach : bool
        If True, the spike in (L5a) is a constant for the gradient (Norse's
        ``lsnn_step``: ``b + z_new.detach() * beta``).
    """

    beta: object = 1.8
    rho: object = 0.95
    learn_beta: bool = False
    learn_rho: bool = False
    detach: bool = False

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "beta", _check_tau(self.beta, "beta", "Adaptation", None, None))
        set_(self, "rho", _check_tau(self.rho, "rho", "Adaptation"))
        for name in ("learn_beta", "learn_rho", "detach"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise fail(name, "True or False", repr(value), "Adaptation", TypeError)
            set_(self, name, bool(value))

    @property
    def learns(self) -> bool:
        return self.learn_beta or self.learn_rho

    def size(self) -> int | None:
        """The number of neurons the per-neuron values fix (None: both scalars)."""
        sizes = {np.size(v) for v in (self.beta, self.rho) if np.ndim(v)}
        return sizes.pop() if len(sizes) == 1 else (None if not sizes else -1)

    def settings(self) -> dict:
        return {f.name: (lambda v: v.tolist() if isinstance(v, np.ndarray) else v)(
            getattr(self, f.name)) for f in fields(self)}

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return _equal_fields(self, other)

    def __hash__(self):
        return hash(tuple(_hashable(getattr(self, f.name)) for f in fields(self)))

    def __repr__(self):
        return "Adaptation(" + ", ".join(f"{k}={v!r}" for k, v in self.settings().items()) + ")"


@dataclass(frozen=True, eq=False)
class LIF:
    """Leaky integrate-and-fire neurons with a decay FACTOR ``tau`` in [0, 1].

    The defaults are the paper's model, (L2)-(L4) of ``docs/model.md``; the other
    options express the conventions of other frameworks (Section 8, (L2g)-(L4n)).

    Parameters
    ----------
    tau : float, or an array over the layer's neurons (per-neuron decay)
        Membrane decay factor of (L2), ``m_t = tau * v_{t-1} + I_t``. Default 0.5.
    theta_init : float
        Initial value of every threshold (L3). Default 2.0 (the paper's). Any finite
        value is legal, <= 0 included (such a neuron may fire without input).
    reset : {"hard", "soft", "subtract_after_leak", "none", "zero_after_leak"}
        (L4h) ``v_t = (1 - s_t) m_t + s_t v_reset``; (L4s) ``v_t = m_t - s_t theta``;
        "subtract_after_leak" (snnTorch's default): the threshold is subtracted at the
        next step, after the leak, ``m_t = tau m_{t-1} + r I_t - s_{t-1} theta`` (L2a);
        "none": ``v_t = m_t`` (L4n); "zero_after_leak" (snnTorch's ``Synaptic`` zero
        reset): the next step's whole membrane is zeroed, its input included,
        ``m_t = (1 - s_{t-1}) (tau m_{t-1} + r I_t)`` (L2z; detach_reset=True only);
        "subtract_no_delay" / "zero_no_delay" (snnTorch's ``reset_delay=False``): the
        spike resets the membrane within its own step, with a detached carry q_t =
        H(v_{t-1} - theta) against a double reset, (L2i), (L4i) (detach_reset=False only).
    detach_reset : bool
        If True, s_t inside the reset is a constant for the gradient
        (B2 uses ``g_t = e_t``); theta in (L4s) and (L2a) keeps its direct gradient.
    spike_at_threshold : bool
        True: H(0) = 1, a membrane exactly at theta fires (the paper, SpikingJelly).
        False: H(0) = 0, fire only strictly above (snnTorch, Norse, NIR) (L3').
    input_gain : float
        r in ``m_t = tau v_{t-1} + (1 - tau) v_leak + r I_t`` (L2g): 1 by default;
        1/tau_SJ for SpikingJelly's ``decay_input=True``; dt/tau_mem for Norse and NIR.
    v_leak : float, or an array over the layer's neurons
        Leak (resting) potential the membrane decays towards (L2g). Default 0.
    v_reset : float, or an array over the layer's neurons
        Potential a hard reset sets (L4h). Default 0.
    v_init : float, or an array over the layer's neurons
        v_0, the membrane before the first step. Default 0 (SpikingJelly starts at
        v_reset, Norse at v_leak).
    alpha_syn : float in [0, 1], an array of them over the layer's neurons, or None
        A current-based synapse (L1s): J_t = alpha_syn J_{t-1} + I_t feeds (L2g) in place
        of I_t (snnTorch ``Synaptic``, Norse ``LIFCell``, NIR ``CubaLIF``). None: none.
    learn_tau : False, "factor" or "sigmoid"
        Train the decay (B7): "factor" trains tau itself, clamped to [0, 1] in the
        forward as snnTorch's ``learn_beta`` does (parameter ``"{layer}.tau"``);
        "sigmoid" trains w with tau = 1 - sigmoid(w), SpikingJelly's ``ParametricLIFNode``
        (parameter ``"{layer}.tau_w"``). ``tau`` gives the initial value and the shape
        (one per layer, or one per neuron).
    tie_gain : bool
        The input gain follows the decay, r = 1 - tau (SpikingJelly's ``decay_input=True``;
        with a fixed tau, ``input_gain`` can say the same). Needs ``input_gain`` left at 1.
    learn_alpha_syn : bool
        Train alpha_syn (B9), clamped to [0, 1] (snnTorch ``learn_alpha``); parameter
        ``"{layer}.alpha_syn"``, one value, or one per neuron for a per-neuron alpha_syn.
    adaptation : Adaptation or None
        An adaptive threshold ``theta + beta a_t`` (LSNN / ALIF; Section 10, (L3v), (L5a)).
        None (default): the threshold is static.
    synapse_delay : bool
        The membrane integrates the (synaptic) current of the step before, J_{t-1} with
        J_0 = 0, in place of J_t (L1d): Norse's LSNN decays the membrane with its current
        state before this step's input jumps it (``norse/torch/functional/lsnn.py``).
    """

    tau: object = 0.5
    theta_init: float = 2.0
    reset: str = "hard"
    detach_reset: bool = False
    spike_at_threshold: bool = True
    input_gain: float = 1.0
    v_leak: float = 0.0
    v_reset: float = 0.0
    v_init: float = 0.0
    alpha_syn: object = None
    learn_tau: object = False
    tie_gain: bool = False
    learn_alpha_syn: bool = False
    adaptation: object = None
    synapse_delay: bool = False

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "tau", _check_tau(self.tau))
        set_(self, "theta_init", check_real(self.theta_init, "theta_init", owner="LIF"))
        check_choice(self.reset, "reset", RESETS, owner="LIF")
        for name in ("detach_reset", "spike_at_threshold", "tie_gain", "learn_alpha_syn",
                     "synapse_delay"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise fail(name, "True or False", repr(value), "LIF", TypeError)
            set_(self, name, bool(value))
        set_(self, "input_gain", check_real(self.input_gain, "input_gain", owner="LIF"))
        for name in PER_NEURON_FIELDS[:3]:                   # a float or one per neuron
            set_(self, name, _check_tau(getattr(self, name), name, low=None, high=None))
        if self.alpha_syn is not None:                       # (L1s): a float or one per neuron
            set_(self, "alpha_syn", _check_tau(self.alpha_syn, "alpha_syn"))
        learn = {False: False, True: "factor"}.get(self.learn_tau, self.learn_tau) \
            if isinstance(self.learn_tau, (bool, np.bool_)) else self.learn_tau
        if learn not in (False, "factor", "sigmoid"):
            raise fail("learn_tau", 'False, "factor" or "sigmoid"', repr(self.learn_tau), "LIF")
        set_(self, "learn_tau", learn)
        tau = np.asarray(self.tau)
        if learn == "sigmoid" and (np.any(tau <= 0) or np.any(tau >= 1)):
            raise fail("tau", 'in (0, 1) with learn_tau="sigmoid" (tau = 1 - sigmoid(w))',
                       repr(self.tau), "LIF")
        if self.tie_gain and self.input_gain != 1.0:
            raise fail("input_gain", "1 with tie_gain=True (the gain is then 1 - tau)",
                       repr(self.input_gain), "LIF")
        if self.learn_alpha_syn and self.alpha_syn is None:
            raise fail("alpha_syn", "a value in [0, 1] with learn_alpha_syn=True", "None", "LIF")
        if isinstance(self.adaptation, dict):                # as ``settings()`` writes it
            set_(self, "adaptation", Adaptation(**self.adaptation))
        if self.adaptation is not None and not isinstance(self.adaptation, Adaptation):
            raise fail("adaptation", "None or a stlsim.Adaptation", type(self.adaptation).__name__,
                       "LIF", TypeError)
        if self.reset == "zero_after_leak" and not self.detach_reset:
            raise fail("detach_reset", "True with reset='zero_after_leak' (snnTorch's Synaptic "
                       "zero reset detaches it, and (L2z) of stlsim's model derives that form only)",
                       "False", "LIF")
        if self.reset in NO_DELAY_RESETS and self.detach_reset:
            raise fail("detach_reset", f"False with reset={self.reset!r} (snnTorch's "
                       "reset_delay=False keeps the spike attached in its reset; "
                       "docs/model.md (L4i) derives that form only)", "True", "LIF")
        if self.reset in NO_DELAY_RESETS and self.stateful:
            raise fail("reset", "a reset other than 'subtract_no_delay' / 'zero_no_delay' "
                       "with an adaptation or synapse_delay ((L2i), (L4i) are not derived "
                       "for the stateful layers of docs/model.md Section 10)",
                       repr(self.reset), "LIF")

    # ------------------------------------------------------------------ description --
    @classmethod
    def preset(cls, name: str, **overrides) -> LIF:
        """The neuron of a named convention (``stlsim.conventions.PRESETS``), e.g.
        ``LIF.preset("snntorch.Leaky", tau=0.9)``; overrides replace its settings."""
        convention = get_convention(name)
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            names = ", ".join(f.name for f in fields(cls))
            raise fail("overrides", f"LIF settings ({names})", ", ".join(unknown),
                       f"LIF.preset({name!r})", TypeError)
        return cls(**{**convention.settings, **overrides})

    @property
    def per_neuron_tau(self) -> bool:
        return np.ndim(self.tau) > 0

    @property
    def per_neuron_values(self) -> tuple:
        """The names of the fields besides tau given one value per neuron (v_leak, v_reset,
        v_init, alpha_syn; (L1s), (L2g), (L4h)), in ``PER_NEURON_FIELDS`` order."""
        return tuple(name for name in PER_NEURON_FIELDS if np.ndim(getattr(self, name)) > 0)

    @property
    def is_paper_form(self) -> bool:
        """True when only the paper's options are used (scalar tau, hard/soft reset,
        H(0) = 1, no gain, leak, reset or initial potential): the form every compiled
        kernel implements."""
        return (not self.per_neuron_tau and self.reset in ("hard", "soft")
                and self.spike_at_threshold and self.input_gain == 1.0
                and not nonzero(self.v_leak) and not nonzero(self.v_reset)
                and not nonzero(self.v_init) and not self.has_synapse
                and not self.learns and not self.tie_gain and not self.stateful)

    @property
    def has_synapse(self) -> bool:
        return self.alpha_syn is not None

    @property
    def learns(self) -> bool:
        """True if the decay, the synapse or the adaptation is trained (extra parameters,
        (B7)-(B9), (B12))."""
        return (bool(self.learn_tau) or self.learn_alpha_syn
                or (self.adaptation is not None and self.adaptation.learns))

    @property
    def adaptive(self) -> bool:
        return self.adaptation is not None

    @property
    def stateful(self) -> bool:
        """True if the neuron needs the stateful loops of Section 10 (an adaptive threshold
        or a delayed synapse); a recurrent layer needs them too."""
        return self.adaptation is not None or self.synapse_delay

    def settings(self) -> dict:
        """Every field as a plain value (tau as a list when per neuron)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Adaptation):
                value = value.settings()
            out[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
        return out

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) if f.name == "adaptation"
                   else np.array_equal(getattr(self, f.name), getattr(other, f.name))
                   for f in fields(self))

    def __hash__(self):
        return hash(tuple(_hashable(getattr(self, f.name)) for f in fields(self)))

    def __repr__(self):
        def text(value):
            if isinstance(value, np.ndarray) and value.size > 4:
                return f"<{value.size} values in [{value.min():.3g}, {value.max():.3g}]>"
            return repr(value.tolist() if isinstance(value, np.ndarray) else value)
        shown = [f"{f.name}={text(getattr(self, f.name))}" for f in fields(self)
                 if f.name in ("tau", "theta_init", "reset", "detach_reset")
                 or (f.name == "adaptation" and self.adaptation is not None)
                 or (f.name != "adaptation"
                     and not np.array_equal(getattr(self, f.name), f.default))]
        return f"LIF({', '.join(shown)})"


def lif_step(current, v_prev, theta, neuron: LIF, spike_fn, s_prev=None, theta_prev=None):
    """One LIF time step; pure, state in and out.

    Returns ``(m, s, v)``: membrane before reset, spikes (0/1, or P(m - theta) in
    smooth mode, whatever ``spike_fn`` computes) and membrane after reset.
    ``s_prev`` (the spikes of the step before; None at the first step) is read only
    by ``reset="subtract_after_leak"``, which subtracts ``s_prev * theta_prev``
    (``theta_prev``: the threshold of the step before, theta itself when None; it
    differs under adaptation, (L3v)). The no-delay resets read the carry q_t = H(v_prev - theta) instead
    (L2i). With the default options this is exactly
    (L2)-(L4); the extra terms are skipped, not added as zeros.
    """
    carry = None
    if neuron.reset in NO_DELAY_RESETS:
        carry = reset_carry(v_prev, theta, neuron)                  # (L2i) q_t, detached
        if neuron.reset == "zero_no_delay":
            v_prev = (1 - carry) * v_prev                           # (L2i) zero
    tau = neuron.tau
    m = tau * v_prev                                                # (L2)
    if nonzero(neuron.v_leak):
        m = m + (1 - tau) * neuron.v_leak                           # (L2g) leak potential
    gain = neuron.input_gain
    m = m + (current if np.ndim(gain) == 0 and gain == 1.0 else gain * current)  # (L2g) gain
    if neuron.reset == "subtract_after_leak" and s_prev is not None:
        m = m - s_prev * (theta if theta_prev is None else theta_prev)  # (L2a)
    if neuron.reset == "zero_after_leak" and s_prev is not None:
        m = (1 - s_prev) * m                                        # (L2z)
    if neuron.reset == "subtract_no_delay":
        m = m - carry * theta                                       # (L2i) subtract
    s = spike_fn(m - theta)                                         # (L3), (L3')
    v = after_reset(m, s, theta, neuron, carry)                     # (L4h), (L4s), (L4n), (L4i)
    return m, s, v


def after_reset(m, s, theta, neuron: LIF, carry=None):
    """v_t from m_t and s_t: the reset of (L4h), (L4s) or (L4n); the no-delay resets
    (L4i) need the step's carry q_t too (``reset_carry``, or ``reset_carries`` over a
    whole run)."""
    if neuron.reset in NO_DELAY_RESETS:
        if carry is None:
            raise fail("carry", f"the carry q_t of (L2i) with reset={neuron.reset!r} "
                       "(stlsim.neurons.reset_carries)", "None", "after_reset", TypeError)
        if neuron.reset == "subtract_no_delay":
            return m - (s - carry) * theta                          # (L4i) subtract
        return (1 - s + carry) * m                                  # (L4i) zero
    if neuron.reset == "hard":
        v = (1 - s) * m                                             # (L4h)
        return v + s * neuron.v_reset if nonzero(neuron.v_reset) else v
    if neuron.reset == "soft":
        return m - s * theta                                        # (L4s)
    return m                                                        # (L4n), (L2a)


def neuron_of(neuron, i: int) -> LIF:
    """The neuron of layer ``i``: ``neuron`` itself, or its entry i when it is a list
    (one per layer; ``Network`` builds it from ``neuron=[...]``)."""
    return neuron[i] if isinstance(neuron, (list, tuple)) else neuron


def tau_like(neuron: LIF, theta):
    """tau as a number, or as an array shaped like ``theta`` (per-neuron decay)."""
    if not neuron.per_neuron_tau:
        return neuron.tau
    tau = np.asarray(neuron.tau, dtype=np.asarray(theta).dtype)
    return tau.reshape(np.shape(theta)) if tau.size == np.size(theta) else np.broadcast_to(
        tau, np.shape(theta))


def initial_spikes(v_init, theta, neuron: LIF):
    """s_0 for ``reset="subtract_after_leak"`` (None for the other resets).

    The first step subtracts ``s_0 theta`` with s_0 = H(v_0 - theta), the "previous
    spike" of the initial membrane (snnTorch computes its first reset from the zero
    state the same way: 0 unless theta < v_0, or theta <= v_0 with H(0) = 1). It is
    the Heaviside in smooth mode too, and a constant for the gradient (L2a).
    """
    if neuron.reset not in ("subtract_after_leak", "zero_after_leak"):
        return None
    x = np.asarray(v_init - theta)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    return ((x >= 0) if neuron.spike_at_threshold else (x > 0)).astype(dtype)


def reset_carry(v_prev, theta, neuron: LIF):
    """q_t = H(v_{t-1} - theta) of (L2i): the Heaviside of the neuron (H(0) = 1 or 0), in
    smooth mode too (snnTorch's detached ``mem_reset``), so a constant for the gradient."""
    x = np.asarray(v_prev - theta)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    return ((x >= 0) if neuron.spike_at_threshold else (x > 0)).astype(dtype)


def reset_carries(membrane, spikes, theta, neuron: LIF):
    """q_t (T, B, *shape) of (L2i) rebuilt from the stored m_t and s_t by the forward scan
    v_0 = v_init, q_t = H(v_{t-1} - theta), v_t = (L4i): the same operations as
    ``lif_step``, so the same values."""
    carries = np.empty_like(spikes)
    v = np.full_like(membrane[0], neuron.v_init)
    for t in range(membrane.shape[0]):
        carries[t] = reset_carry(v, theta, neuron)
        v = after_reset(membrane[t], spikes[t], theta, neuron, carries[t])
    return carries


def replace_unchecked(neuron: LIF, **values) -> LIF:
    """A copy of ``neuron`` with fields replaced, without the checks of ``LIF`` (for the
    values a ``Network`` computes from its parameters on each call: a trained decay, the
    gain tied to it, a per-neuron array shaped like the layer). Works for an
    ``Adaptation`` too."""
    copy = type(neuron).__new__(type(neuron))
    for name, value in vars(neuron).items():
        object.__setattr__(copy, name, value)
    for name, value in values.items():
        object.__setattr__(copy, name, value)
    return copy


def synaptic_current(current, neuron: LIF):
    """J_t = alpha_syn J_{t-1} + I_t, J_0 = 0 (L1s), over the time axis 0; ``current``
    itself without a synapse."""
    if not neuron.has_synapse:
        return current
    alpha = neuron.alpha_syn
    syn = np.empty_like(current)
    j = np.zeros_like(current[0])
    for t in range(current.shape[0]):
        j = alpha * j + current[t]                                  # (L1s)
        syn[t] = j
    return syn


def adaptation_arrays(neuron: LIF, theta):
    """(beta, rho) of an adaptive neuron as arrays shaped like ``theta`` (the layer's
    neurons), or (None, None) without adaptation."""
    if not neuron.adaptive:
        return None, None
    theta = np.asarray(theta)
    out = []
    for value in (neuron.adaptation.beta, neuron.adaptation.rho):
        value = np.asarray(value, dtype=theta.dtype)
        out.append(value.reshape(theta.shape) if value.size == theta.size > 1
                   else np.broadcast_to(value.reshape(()) if value.size == 1 else value,
                                        theta.shape))
    return tuple(out)


def adaptation_states(spikes, rho):
    """a_t (T, B, *shape) of (L5a) from the spikes s_t: a_1 = 0, a_{t+1} = rho a_t + s_t."""
    a = np.empty_like(spikes)
    state = np.zeros_like(spikes[0])
    for t in range(spikes.shape[0]):
        a[t] = state
        state = rho * state + spikes[t]
    return a
