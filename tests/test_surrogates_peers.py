"""Every surrogate of snnTorch 1.0, SpikingJelly 2.0 and Norse 1.1 (docs/model.md (S1)-(S18)).

* Each (P, P') pair: P' equals float64 central differences of P away from its kinks.
* Smooth mode: BPTT of a network with each surrogate equals float64 finite differences.
* Spiking mode: each peer's own surrogate, converted, gives ``rep.ok`` against the peer.
* A surrogate the compiled kernels do not know (user-defined): the Numba backend runs the
  NumPy reference, counted as "fallback:numpy" (the kernels know all eighteen:
  tests/test_interop_kernels.py, tests/test_surrogates_compiled.py).
* Negative: a surrogate's parameter changed by 1e-3 in the peer is caught.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import stlsim
from stlsim import surrogate as S
from stlsim.grad.check import compare, finite_difference_grads

# (surrogate, the points where P' or P'' jumps: a finite-difference stencil that straddles
# one is off by O(h) or more, so the tests keep away from them or take a smaller step)
PAIRS = [
    (S.StraightThrough(1.3), ()), (S.SignedConstant(0.7), (0.0,)), (S.SpikeGate(1.0), (0.0,)),
    (S.SpikeRateEscape(3.0, 2.0), (1.0,)), (S.LeakyGate(0.2), (0.0,)),
    (S.SparseFastSigmoid(4.0, -0.3), (-0.3, 0.0)), (S.PiecewiseQuadratic(1.5), (-2 / 3, 0.0, 2 / 3)),
    (S.PiecewiseExp(2.0), (0.0,)), (S.SoftSign(2.0), (0.0,)), (S.Erf(2.0), ()),
    (S.PiecewiseLeakyReLU(0.8, 0.05), (-0.8, 0.8)), (S.LogAbs(1.5), (0.0,)),
    (S.S2NN(4.0, 1.0), (0.0,)), (S.QPseudoSpike(2.5), (0.0,)), (S.LeakyKReLU(1.2, 0.1), (0.0,)),
    (S.HeaviTanh(2.0), ()), (S.Circ(0.5), ()), (S.HeaviErfc(1.5), ()),
]


@pytest.mark.parametrize("sg,kinks", PAIRS, ids=lambda v: repr(v) if isinstance(v, S.Surrogate) else "")
def test_each_derivative_is_the_derivative_of_its_primitive(sg, kinks):
    x = np.linspace(-3.0, 3.0, 6001)
    h = 1e-6
    away = np.all([np.abs(x - k) > 10 * h for k in kinks], axis=0) if kinks else np.ones_like(x, bool)
    x = x[away]
    fd = (sg.primitive(x + h) - sg.primitive(x - h)) / (2 * h)
    np.testing.assert_allclose(sg.derivative(x), fd, rtol=1e-6, atol=1e-7)
    assert sg.derivative(np.float32(0.25)).dtype == np.float32          # keeps x's dtype
    assert S.get(sg.name) == type(sg)()                                  # by name, defaults


@pytest.mark.parametrize("sg,kinks", PAIRS, ids=lambda v: repr(v) if isinstance(v, S.Surrogate) else "")
def test_smooth_bptt_with_each_surrogate_matches_finite_differences(sg, kinks):
    layers = [stlsim.Dense(6, 9, init_gain=2.0), stlsim.Dense(9, 4, init_gain=2.0)]
    neuron = stlsim.LIF(tau=0.6, theta_init=0.4, reset="soft")
    net = stlsim.Network(layers, neuron=neuron, surrogate=sg, population=2, seed=0, backend="numpy")
    x = (np.random.default_rng(1).random((8, 3, 6)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    fd = finite_difference_grads(net, x, y, step=1e-5 if kinks else 1e-4)
    errors = compare(grads, fd)
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    assert all(e["scale"] > 1e-6 for e in errors.values()), "a dead gradient checks nothing"


def test_the_compiled_kernels_fall_back_to_the_reference_counted():
    # a user-defined surrogate (here a subclass of a two-parameter one): no kernel code, so
    # the reference runs; every built-in one is compiled (tests/test_interop_kernels.py)
    from stlsim.engines import get_backend

    class Custom(S.SpikeRateEscape):
        name = "custom"
    backend = get_backend("numba")
    before = backend.calls["fallback:numpy"]
    surrogate = Custom(2.0, 1.0)
    net = stlsim.Network([stlsim.Dense(6, 4)], surrogate=surrogate, seed=0, backend="numba")
    x = (np.random.default_rng(1).random((5, 2, 6)) < 0.5).astype(np.float64)
    _, grads = net.loss_and_grad(x, np.array([0, 1]))
    reference = stlsim.Network([stlsim.Dense(6, 4)], surrogate=surrogate, seed=0, backend="numpy")
    _, expected = reference.loss_and_grad(x, np.array([0, 1]))
    assert backend.calls["fallback:numpy"] >= before + 2                # forward and backward
    for key in grads:
        np.testing.assert_array_equal(grads[key], expected[key])


def test_surrogate_parameters_are_checked_by_name():
    with pytest.raises(ValueError, match="`beta` of `SpikeRateEscape`"):
        S.SpikeRateEscape(25.0, 0.0)
    with pytest.raises(TypeError, match="`second` of `Erf`"):
        S.Erf(2.0, 3.0)
    assert S.SparseFastSigmoid(25.0, 1.0) != S.SparseFastSigmoid(25.0, 0.5)


# ---------------------------------------------------------------- against the peers --

torch = pytest.importorskip("torch")
import stlsim.interop as interop  # noqa: E402
from peer_helpers import random_spikes, scale_weights  # noqa: E402


spikes = functools.partial(random_spikes, density=0.4, dtype=np.float32)
scaled = scale_weights


SNNTORCH = [("straight_through_estimator", ()), ("triangular", (0.7,)), ("heaviside", ()),
            ("sigmoid", (5.0,)), ("spike_rate_escape", (2.0, 3.0)),
            ("SFS", (4.0, -0.3)), ("atan", (3.0,)), ("fast_sigmoid", (10.0,))]


@pytest.mark.parametrize("factory,args", SNNTORCH, ids=[f for f, _ in SNNTORCH])
def test_every_snntorch_surrogate_agrees_with_snntorch(factory, args):
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    grad = getattr(snn.surrogate, factory)(*args)
    model = scaled(torch.nn.Sequential(
        torch.nn.Linear(8, 10), snn.Leaky(beta=0.8, spike_grad=grad, init_hidden=True),
        torch.nn.Linear(10, 4), snn.Leaky(beta=0.7, spike_grad=grad, init_hidden=True,
                                           output=True)), 2.5)
    rep = interop.compare(model, spikes((10, 3, 8)), seed=1)
    assert rep.ok, str(rep)


SPIKINGJELLY = [("PiecewiseQuadratic", dict(alpha=1.5)), ("PiecewiseExp", dict(alpha=2.0)),
                ("SoftSign", dict(alpha=2.0)), ("Erf", dict(alpha=2.0)),
                ("PiecewiseLeakyReLU", dict(w=0.8, c=0.05)), ("NonzeroSignLogAbs", dict(alpha=1.5)),
                ("S2NN", dict(alpha=4.0, beta=1.0)), ("QPseudoSpike", dict(alpha=2.5)),
                ("LeakyKReLU", dict(leak=0.1, k=1.2)), ("Rect", dict(alpha=0.8)),
                ("Sigmoid", dict(alpha=4.0)), ("ATan", dict(alpha=2.0)), ("SuperSpike", dict(alpha=1.0))]


@pytest.mark.parametrize("kind,kwargs", SPIKINGJELLY, ids=[k for k, _ in SPIKINGJELLY])
def test_every_spikingjelly_surrogate_agrees_with_spikingjelly(kind, kwargs):
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate
    torch.manual_seed(0)

    def node():
        return neuron.LIFNode(tau=2.0, step_mode="m", surrogate_function=getattr(surrogate, kind)(**kwargs))
    model = scaled(torch.nn.Sequential(torch.nn.Linear(8, 10), node(), torch.nn.Linear(10, 4),
                                       node()).double(), 4.0)
    rep = interop.compare(model, spikes((10, 3, 8), dtype=np.float64), seed=1)
    assert rep.ok, str(rep)


@pytest.mark.parametrize("method", ["super", "triangle", "tanh", "circ", "heavi_erfc"])
def test_every_norse_method_agrees_with_norse(method):
    norse = pytest.importorskip("norse.torch")
    from norse.torch.functional.lif_box import LIFBoxParameters
    torch.manual_seed(0)
    p = LIFBoxParameters(method=method, alpha=torch.as_tensor(2.0))
    model = scaled(norse.SequentialState(torch.nn.Linear(8, 10), norse.LIFBoxCell(p),
                                         torch.nn.Linear(10, 4), norse.LIFBoxCell(p)).double(), 30.0)
    rep = interop.compare(model, spikes((12, 3, 8), dtype=np.float64), seed=1)
    assert rep.ok, str(rep)


def test_snntorch_lso_which_fails_in_snntorch_itself_is_refused_by_name():
    snn = pytest.importorskip("snntorch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), snn.Leaky(beta=0.5, init_hidden=True,
                                                                 spike_grad=snn.surrogate.LSO(0.2)))
    with pytest.raises(ValueError, match=r"`model\[1\]\.spike_grad`.*LSO calls SSO"):
        interop.from_snntorch(model, (3,))


def test_a_surrogate_slope_changed_by_1e_3_in_the_peer_is_caught():
    # The peer declares Erf(alpha=2) but its backward uses alpha (1 + 1e-3).
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate
    torch.manual_seed(0)
    model = scaled(torch.nn.Sequential(
        torch.nn.Linear(8, 10), neuron.LIFNode(step_mode="m", surrogate_function=surrogate.Erf(2.0)),
        torch.nn.Linear(10, 4), neuron.LIFNode(step_mode="m", surrogate_function=surrogate.Erf(2.0))
    ).double(), 4.0)
    x = spikes((10, 3, 8), dtype=np.float64)
    assert interop.compare(model, x, seed=1).ok
    original = surrogate.erf.backward

    def skewed(ctx, grad_output):
        ctx.alpha = ctx.alpha * (1 + 1e-3)
        return original(ctx, grad_output)
    surrogate.erf.backward = staticmethod(skewed)
    try:
        rep = interop.compare(model, x, seed=1)
    finally:
        surrogate.erf.backward = staticmethod(original)
    assert rep.spikes_equal and not rep.ok
    # located where the skewed backward first acts in reverse time: dL/dI_t of the output
    # layer (layer 1), whose dL/ds_t is the probe itself and so agrees
    assert rep.first_divergence_pass == "backward" and rep.first_divergence[0] == 1
    assert rep.first_divergence_of == "dL/dI_t"


# ------------------------------------------------------------- one surrogate per layer --

def per_layer_net(backend="numpy"):
    layers = [stlsim.Dense(6, 9, init_gain=2.0), stlsim.Dense(9, 4, init_gain=2.0)]
    return stlsim.Network(layers, neuron=stlsim.LIF(tau=0.6, theta_init=0.4, reset="soft"),
                          surrogate=[S.Erf(1.5), "atan"], population=2, seed=0, backend=backend)


def test_smooth_bptt_with_one_surrogate_per_layer_matches_finite_differences():
    net = per_layer_net()
    x = (np.random.default_rng(1).random((8, 3, 6)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 1])
    _, grads = net.loss_and_grad(x, y, smooth=True)
    errors = compare(grads, finite_difference_grads(net, x, y, step=1e-4))
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors
    # negative: the same surrogate in both layers (the nearest wrong convention) differs
    shared = stlsim.Network(net.layers, neuron=net.neuron, surrogate=S.Erf(1.5), population=2,
                            seed=0, backend="numpy")
    _, other = shared.loss_and_grad(x, y, smooth=True)
    assert not np.allclose(other["0.weight"], grads["0.weight"], rtol=1e-3)
    assert net.surrogates == [S.Erf(1.5), S.ATan(2.0)]


def test_one_surrogate_per_layer_runs_on_the_numba_backend_and_refuses_the_event_engine():
    x = (np.random.default_rng(1).random((8, 3, 6)) < 0.5).astype(np.float64)
    y = np.array([0, 1, 1])
    _, expected = per_layer_net().loss_and_grad(x, y)
    _, grads = per_layer_net("numba").loss_and_grad(x, y)
    for key in expected:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="`engine` of `Network` must be 'clock'"):
        per_layer_net().forward(x, engine="event")
    with pytest.raises(ValueError, match="one per spiking layer"):
        stlsim.Network([stlsim.Dense(6, 4)], surrogate=["atan", "atan"])


def test_a_different_snntorch_surrogate_per_layer_agrees_with_snntorch():
    # Before: refused ("the same surrogate in every layer").
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    model = scaled(torch.nn.Sequential(
        torch.nn.Linear(8, 10), snn.Leaky(beta=0.8, spike_grad=snn.surrogate.atan(3.0), init_hidden=True),
        torch.nn.Linear(10, 4), snn.Leaky(beta=0.7, spike_grad=snn.surrogate.fast_sigmoid(10),
                                           init_hidden=True, output=True)), 2.5)
    rep = interop.compare(model, spikes((10, 3, 8)), seed=1)
    assert rep.ok, str(rep)
    net = interop.from_snntorch(model, (8,))
    assert net.surrogates == [S.ATan(3.0), S.SuperSpike(10.0)]
