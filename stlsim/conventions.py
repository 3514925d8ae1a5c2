"""Named neuron conventions: the paper's, and the default neurons of other frameworks.

Each preset is a plain ``Convention`` listing its ``LIF`` settings, its surrogate and
the peer source file each setting was read from: data only (this module imports no
other stlsim module but ``_checks``; ``neurons`` imports it, never the reverse).
``LIF.preset(name, **overrides)`` builds the neuron, ``get(name).surrogate()`` the
surrogate. The equations are
``docs/model.md`` Section 8 ((L2g), (L2a), (L3'), (L4h) with v_reset, (L4n)).

    net = stlsim.Network(layers, neuron=stlsim.LIF.preset("snntorch.Leaky", tau=0.9),
                         surrogate=stlsim.conventions.get("snntorch.Leaky").surrogate())

Conversions from a peer's own parameters: ``from_spikingjelly(tau, decay_input, ...)``
and ``from_norse(tau_mem_inv, dt, ...)``. Plain Python: importing this loads nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ._checks import check_real, fail

__all__ = ["Convention", "PRESETS", "PENDING", "get", "names", "from_spikingjelly", "from_norse"]


@dataclass(frozen=True)
class Convention:
    """One named convention: ``LIF`` settings, a surrogate (name, parameter), sources, and
    for a recurrent peer neuron the ``Dense`` options of its layer (``layer``, e.g.
    ``stlsim.Dense(700, 128, **get("snntorch.RLeaky").layer)``; docs/model.md Section 10)."""

    name: str
    settings: dict
    surrogate_name: str
    surrogate_value: float
    sources: tuple = ()
    notes: str = ""
    required: tuple = field(default=())     # settings the peer has no default for
    layer: dict = field(default_factory=dict)   # the Dense options the peer's layer needs

    def surrogate(self, value=None):
        """The surrogate of this convention (its parameter replaced by ``value``)."""
        from . import surrogate
        return surrogate.get(self.surrogate_name,
                             self.surrogate_value if value is None else value)


def from_spikingjelly(tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                      v_reset: float | None = 0.0, detach_reset: bool = False) -> dict:
    """LIF settings of SpikingJelly's ``LIFNode(tau, decay_input, v_threshold, v_reset)``.

    Its charge (``spikingjelly/_ops/lif/reference.py``) is
    ``h = v + (x - (v - v_reset)) / tau`` (decay_input) or ``h = v - (v - v_reset)/tau + x``:
    a decay factor 1 - 1/tau, a leak towards v_reset, an input gain 1/tau (or 1). Its
    reset (``spikingjelly/_ops/reset.py``) sets v_reset, or subtracts the threshold when
    v_reset is None (then the leak goes towards 0). It starts at v = v_reset.
    """
    tau = check_real(tau, "tau", low=1.0, owner="from_spikingjelly")
    leak = 0.0 if v_reset is None else float(v_reset)
    return {"tau": 1.0 - 1.0 / tau, "input_gain": 1.0 / tau if decay_input else 1.0,
            "v_leak": leak, "v_reset": leak, "v_init": leak,
            "reset": "soft" if v_reset is None else "hard", "theta_init": float(v_threshold),
            "detach_reset": bool(detach_reset), "spike_at_threshold": True}


def from_norse(tau_mem_inv: float = 100.0, dt: float = 1e-3, v_th: float = 1.0,
               v_leak: float = 0.0, v_reset: float = 0.0) -> dict:
    """LIF settings of Norse's ``LIFBoxCell`` / NIR's ``LIF`` (Euler step ``dt``).

    ``norse/torch/functional/lif_box.py``: ``v_decayed = v + dt tau_mem_inv (i + v_leak - v)``,
    ``z = heaviside(v_decayed - v_th)`` (strictly above: ``heaviside.py``), then
    ``v = (1 - z) v_decayed + z v_reset``; the state starts at v_leak. So tau = 1 - dt /
    tau_mem, input gain dt / tau_mem, H(0) = 0.
    """
    rate = check_real(dt, "dt", low=0.0, low_open=True, owner="from_norse") * check_real(
        tau_mem_inv, "tau_mem_inv", low=0.0, owner="from_norse")
    if rate > 1.0:
        raise fail("dt * tau_mem_inv", "at most 1 (a decay factor 1 - dt/tau_mem >= 0)",
                   repr(rate), "from_norse")
    return {"tau": 1.0 - rate, "input_gain": rate, "v_leak": float(v_leak),
            "v_reset": float(v_reset), "v_init": float(v_leak), "reset": "hard",
            "theta_init": float(v_th), "detach_reset": False, "spike_at_threshold": False}


PRESETS = {
    "stl": Convention(
        "stl", {}, "atan", 2.0,
        sources=("Sun et al., IEEE TCDS 2024; docs/model.md (L1)-(L4)",),
        notes="The paper's neuron: tau 0.5, theta 2, hard reset, H(0) = 1; stlsim's default."),
    "snntorch.Leaky": Convention(
        "snntorch.Leaky",
        {"tau": 0.5, "theta_init": 1.0, "reset": "subtract_after_leak", "detach_reset": True,
         "spike_at_threshold": False},
        "atan", 2.0,
        sources=("snntorch/_neurons/leaky.py: _base_sub, mem = beta.clamp(0, 1) * mem + input_ "
                 "- reset * threshold, reset from the previous step (reset_delay=True)",
                 "snntorch/_neurons/neurons.py: mem_reset(...).detach(); threshold=1.0",
                 "snntorch/surrogate.py: atan(alpha=2.0), forward (input_ > 0)"),
        notes="beta has no default in snnTorch: pass tau=beta. snnTorch's spikes are float32.",
        required=("tau",)),
    "snntorch.Leaky.zero": Convention(
        "snntorch.Leaky.zero",
        {"tau": 0.5, "theta_init": 1.0, "reset": "hard", "detach_reset": True,
         "spike_at_threshold": False},
        "atan", 2.0,
        sources=("snntorch/_neurons/leaky.py: _base_zero, mem = beta (1 - reset) mem + input_",),
        notes="reset_mechanism='zero': stlsim's hard reset with detach_reset=True and H(0) = 0.",
        required=("tau",)),
    "snntorch.Leaky.no_delay": Convention(
        "snntorch.Leaky.no_delay",
        {"tau": 0.5, "theta_init": 1.0, "reset": "subtract_no_delay", "detach_reset": False,
         "spike_at_threshold": False},
        "atan", 2.0,
        sources=("snntorch/_neurons/leaky.py: Leaky(reset_delay=False).forward, reset = "
                 "mem_reset(mem) (detached), mem = _base_sub(input_), spk = fire(mem), then "
                 "mem = mem - (spk - reset) * threshold (spk attached)",),
        notes="reset_delay=False: the spike resets its own step (docs/model.md (L2i), (L4i)). "
              "Pass tau=beta.",
        required=("tau",)),
    "snntorch.Leaky.zero.no_delay": Convention(
        "snntorch.Leaky.zero.no_delay",
        {"tau": 0.5, "theta_init": 1.0, "reset": "zero_no_delay", "detach_reset": False,
         "spike_at_threshold": False},
        "atan", 2.0,
        sources=("snntorch/_neurons/leaky.py: Leaky(reset_mechanism='zero', reset_delay=False)"
                 ".forward, mem = _base_zero(input_), then mem = mem - (spk - reset) * mem",),
        notes="The attached zero reset within the step (L2i), (L4i); what snnTorch's NIR "
              "importer builds. Pass tau=beta.",
        required=("tau",)),
    "spikingjelly.LIFNode": Convention(
        "spikingjelly.LIFNode", from_spikingjelly(), "sigmoid", 4.0,
        sources=("spikingjelly/activation_based/neuron/lif.py: LIFNode(tau=2.0, decay_input=True, "
                 "v_threshold=1.0, v_reset=0.0, surrogate.Sigmoid(), detach_reset=False)",
                 "spikingjelly/_ops/lif/reference.py: charge; spikingjelly/_ops/reset.py: voltage",
                 "spikingjelly/activation_based/surrogate.py: heaviside (x >= 0), Sigmoid(alpha=4)"),
        notes="tau_SJ = 2: decay 0.5, input gain 0.5. from_spikingjelly() converts other values."),
    "norse.LIFBoxCell": Convention(
        "norse.LIFBoxCell", from_norse(), "superspike", 1.0,
        sources=("norse/torch/functional/lif_box.py: LIFBoxParameters(tau_mem_inv=100, v_leak=0, "
                 "v_th=1, v_reset=0, method='super', alpha=100), dt=0.001",
                 "norse/torch/functional/heaviside.py: torch.gt(x, 0)",
                 "norse/torch/functional/superspike.py: grad / (|x| + 1)^2 (alpha is not used)"),
        notes="Norse 1.1's SuperSpike backward ignores alpha: 1 / (1 + |x|)^2, stlsim's "
              "SuperSpike(beta=1)."),
    "snntorch.Synaptic": Convention(
        "snntorch.Synaptic",
        {"tau": 0.5, "alpha_syn": 0.5, "theta_init": 1.0, "reset": "subtract_after_leak",
         "detach_reset": True, "spike_at_threshold": False},
        "atan", 2.0,
        sources=("snntorch/_neurons/synaptic.py: _base_state_function, syn = alpha.clamp(0, 1) * "
                 "syn + input_; mem = beta.clamp(0, 1) * mem + syn; _base_sub subtracts "
                 "reset * threshold (reset from the previous step, detached)",),
        notes="alpha and beta have no defaults in snnTorch: pass alpha_syn=alpha, tau=beta; "
              "learn_alpha / learn_beta are learn_alpha_syn=True / learn_tau='factor'.",
        required=("tau", "alpha_syn")),
    "snntorch.Synaptic.no_delay": Convention(
        "snntorch.Synaptic.no_delay",
        {"tau": 0.5, "alpha_syn": 0.5, "theta_init": 1.0, "reset": "subtract_no_delay",
         "detach_reset": False, "spike_at_threshold": False},
        "atan", 2.0,
        sources=("snntorch/_neurons/synaptic.py: Synaptic(reset_delay=False).forward, the "
                 "subtraction mem - (spk - reset) * threshold after fire (syn untouched)",),
        notes="Synaptic's immediate subtract reset (L1s), (L2i), (L4i). Pass alpha_syn=alpha, "
              "tau=beta.",
        required=("tau", "alpha_syn")),
    "norse.LIFCell": Convention(
        "norse.LIFCell", {**from_norse(), "alpha_syn": 1.0 - 1e-3 * 200.0}, "superspike", 1.0,
        sources=("norse/torch/functional/lif.py: lif_feed_forward_step, i_new = i + input; "
                 "v_decayed = v + dt tau_mem_inv ((v_leak - v) + i_new); i = i_new (1 - dt "
                 "tau_syn_inv); LIFParameters(tau_syn_inv=200, tau_mem_inv=100), dt=0.001",),
        notes="The synaptic current J_t = (1 - dt/tau_syn) J_{t-1} + I_t feeds the membrane "
              "of the same step."),
    "spikingjelly.ParametricLIFNode": Convention(
        "spikingjelly.ParametricLIFNode",
        {**{k: v for k, v in from_spikingjelly().items() if k != "input_gain"},
         "learn_tau": "sigmoid", "tie_gain": True},
        "sigmoid", 4.0,
        sources=("spikingjelly/activation_based/neuron/plif.py: ParametricLIFNode(init_tau=2.0, "
                 "decay_input=True), w = -log(init_tau - 1)",
                 "spikingjelly/_ops/plif/reference.py: h = v + (x - (v - v_reset)) * sigmoid(w)"),
        notes="One trained w per layer: tau = 1 - sigmoid(w), input gain sigmoid(w) = 1 - tau "
              "(tie_gain); the parameter is '{layer}.tau_w'."),
}

_LEAKY, _SYNAPTIC, _NORSE_CELL = (PRESETS["snntorch.Leaky"], PRESETS["snntorch.Synaptic"],
                                  PRESETS["norse.LIFCell"])
_RLEAKY_SOURCE = ("snntorch/_neurons/rleaky.py: _base_state_function, mem = beta.clamp(0, 1) * "
                  "mem + input_ + recurrent(spk); recurrent = nn.Linear(linear_features, "
                  "linear_features) (all_to_all=True, with a bias) or RecurrentOneToOne: spk * V; "
                  "spk starts at zeros (reset_mem)")


def _lsnn(dt=1e-3, tau_mem_inv=100.0, tau_syn_inv=200.0, tau_adapt_inv=1.0 / 800, beta=1.8,
          recurrent=False) -> dict:
    """LIF settings of Norse's LSNN cells (``LSNNParameters`` defaults): (L1d), (L3v), (L5a)
    with rho = 1 - dt tau_adapt_inv and beta = rho beta_N (docs/model.md 10.1)."""
    rho = 1.0 - dt * tau_adapt_inv
    return {**from_norse(tau_mem_inv, dt), "alpha_syn": 1.0 - dt * tau_syn_inv,
            "synapse_delay": True, "detach_reset": recurrent,
            "adaptation": {"beta": rho * beta, "rho": rho, "learn_beta": False,
                           "learn_rho": False, "detach": recurrent}}


_LSNN_SOURCES = ("norse/torch/functional/lsnn.py: v_decayed = v + dt tau_mem_inv ((v_leak - v) "
                 "+ i) (the current before this step's input), b_decayed = b + dt tau_adapt_inv "
                 "(v_th - b), z = heaviside(v_decayed - b_decayed), b_new = b_decayed + z beta; "
                 "LSNNParameters(tau_syn_inv=200, tau_mem_inv=100, tau_adapt_inv=1/800, beta=1.8)",
                 "norse/torch/module/lsnn.py: initial state v = v_leak, i = 0, b = v_th")

PRESETS.update({
    "snntorch.RLeaky": Convention(
        "snntorch.RLeaky", dict(_LEAKY.settings), "atan", 2.0, sources=(_RLEAKY_SOURCE,),
        notes="Leaky with an all-to-all recurrence (nn.Linear, bias included): "
              "Dense(..., recurrent='all', recurrent_bias=True). Pass tau=beta.",
        required=("tau",), layer={"recurrent": "all", "recurrent_bias": True}),
    "snntorch.RLeaky.one": Convention(
        "snntorch.RLeaky.one", dict(_LEAKY.settings), "atan", 2.0, sources=(_RLEAKY_SOURCE,),
        notes="RLeaky(all_to_all=False, V=...): Dense(..., recurrent='one').",
        required=("tau",), layer={"recurrent": "one"}),
    "snntorch.RSynaptic": Convention(
        "snntorch.RSynaptic", dict(_SYNAPTIC.settings), "atan", 2.0,
        sources=("snntorch/_neurons/rsynaptic.py: syn = alpha.clamp(0, 1) * syn + input_ + "
                 "recurrent(spk); mem = beta.clamp(0, 1) * mem + syn", _RLEAKY_SOURCE),
        notes="Synaptic with the recurrent current before the synapse (L1r), (L1s).",
        required=("tau", "alpha_syn"), layer={"recurrent": "all", "recurrent_bias": True}),
    "norse.LIFRecurrentCell": Convention(
        "norse.LIFRecurrentCell", {**_NORSE_CELL.settings, "detach_reset": True}, "superspike", 1.0,
        sources=("norse/torch/functional/lif.py: lif_step, i_jump = i + W z_in + V z; v_new = "
                 "(1 - z_new.detach()) v_decayed + z_new.detach() v_reset",
                 "norse/torch/module/snn.py: SNNRecurrentCell(autapses=False) zeroes V's diagonal "
                 "and its gradient"),
        notes="LIFCell with a recurrence and a detached reset; the input weights live in the "
              "cell (Dense(input_size, hidden_size, recurrent='all')).",
        layer={"recurrent": "all"}),
    "norse.LSNNCell": Convention(
        "norse.LSNNCell", _lsnn(), "superspike", 1.0, sources=_LSNN_SOURCES,
        notes="lsnn_feed_forward_step: nothing detached."),
    "norse.LSNNRecurrentCell": Convention(
        "norse.LSNNRecurrentCell", _lsnn(recurrent=True), "superspike", 1.0,
        sources=_LSNN_SOURCES + ("lsnn_step: z_new.detach() in the reset and in b; i_new adds "
                                 "V z (the spikes of the step before)",),
        notes="A spike reaches the membrane through V two steps later (L1r) with (L1d).",
        layer={"recurrent": "all"}),
})

# Conventions that need a model stlsim does not have yet: named so that asking for one
# is a clear error, not a silently different neuron.
PENDING = {}


def names() -> tuple:
    """The preset names ``get`` accepts."""
    return tuple(PRESETS)


def get(name: str) -> Convention:
    """The ``Convention`` called ``name`` (see ``names()``)."""
    if isinstance(name, str) and name in PRESETS:
        return PRESETS[name]
    if isinstance(name, str) and name in PENDING:
        raise fail("name", f"one of {', '.join(map(repr, PRESETS))}",
                   f"{name!r}, which needs {PENDING[name]}: not in stlsim yet",
                   "stlsim.conventions.get", NotImplementedError)
    raise fail("name", f"one of {', '.join(map(repr, PRESETS))}", repr(name),
               "stlsim.conventions.get")
