"""The "numba" backend's stateful kernels (``kernels.recurrent_cpu``) against the NumPy
reference of docs/model.md Section 10 (``clock.lif_forward_stateful``,
``bptt.lif_backward_stateful``).

Budgets as ``tests/test_numba_backend.py``: float64 within 1e-12 of the largest
reference entry of each tensor, float32 within 1e-5; spikes equal in spiking mode. The
counters prove the kernels ran, not the fallback.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import stlsim  # noqa: E402
from stlsim.engines import get_backend, numba_backend  # noqa: E402
from stlsim.engines.clock import lif_forward_stateful  # noqa: E402
from stlsim.grad.bptt import lif_backward_stateful  # noqa: E402
from stlsim.kernels import cpu, recurrent_cpu  # noqa: E402
from stlsim.layers.base import Recurrence  # noqa: E402
from conftest import assert_close, rotated  # noqa: E402

BACKEND = get_backend("numba")
TOL = {np.float64: 1e-12, np.float32: 1e-5}
ADAPT = dict(beta=0.6, rho=0.8, learn_beta=True, learn_rho=True)

# (recurrence, bias, LIF options, Adaptation options or None, surrogate)
CASES = [
    ("all", False, {}, None, "atan"),
    ("one", False, {}, None, "sigmoid"),
    ("all", True, dict(reset="soft"), None, "superspike"),
    ("all", False, dict(reset="subtract_after_leak"), ADAPT, "atan"),
    ("all", True, dict(reset="subtract_after_leak", detach_reset=True,
                       spike_at_threshold=False), None, "triangle"),
    ("one", True, dict(reset="none", spike_at_threshold=False), ADAPT, "rectangular"),
    (None, False, dict(detach_reset=True), dict(ADAPT, detach=True), "atan"),
    (None, False, dict(reset="soft"), dict(beta=1.2, rho=0.9, learn_beta=True), "superspike_sj"),
    ("all", False, dict(tau=np.linspace(0.3, 0.9, 12)),
     dict(beta=np.linspace(0.2, 1.0, 12), rho=np.linspace(0.6, 0.95, 12), learn_beta=True,
          learn_rho=True), "atan"),
    ("one", False, dict(input_gain=0.4, v_leak=0.1, v_reset=-0.1, v_init=0.2), ADAPT, "sigmoid"),
    ("all", False, dict(v_init=1.5, reset="subtract_after_leak"), ADAPT, "atan"),  # s_0 = 1
]


def _case_id(case):
    rec, bias, options, adapt, surrogate = case
    parts = [f"rec={rec}"] + (["bias"] if bias else []) + list(options)
    return ",".join(parts + (["adapt"] if adapt else []) + [surrogate])


def make_layer(case, dtype, *, T=25, B=3, N=12, seed=0):
    rec, bias, options, adapt, surrogate = case
    options = dict(options)
    tau = options.pop("tau", 0.8)
    adaptation = None if adapt is None else stlsim.Adaptation(**adapt)
    neuron = stlsim.LIF(tau=tau, adaptation=adaptation, **options)
    rng = np.random.default_rng(seed)
    current = rng.normal(0.25, 0.7, (T, B, N)).astype(dtype)
    theta = rng.uniform(0.3, 1.0, N).astype(dtype)
    recurrence = None
    if rec is not None:
        shape = (N, N) if rec == "all" else (N,)
        recurrence = Recurrence(rec, rng.normal(0.0, 0.6, shape).astype(dtype),
                                rng.normal(0.0, 0.2, N).astype(dtype) if bias else None)
    grad_spikes = rng.normal(size=(T, B, N)).astype(dtype)
    return neuron, stlsim.surrogate.get(surrogate), current, theta, recurrence, grad_spikes


def accumulators(neuron, n):
    out = {}
    if neuron.adaptive and neuron.adaptation.learn_beta:
        out["grad_beta"] = np.zeros(n)
    if neuron.adaptive and neuron.adaptation.learn_rho:
        out["grad_rho"] = np.zeros(n)
    return out


def run_both(case, dtype, smooth, **sizes):
    neuron, sg, current, theta, recurrence, grad_spikes = make_layer(case, dtype, **sizes)
    ref_s, ref_m = lif_forward_stateful(current, theta, neuron, sg, smooth, None, recurrence)
    spikes, membrane = BACKEND.lif_forward_stateful(current, theta, neuron, sg, smooth,
                                                    recurrence)
    ref_acc, acc = accumulators(neuron, theta.size), accumulators(neuron, theta.size)
    ref_b = lif_backward_stateful(grad_spikes, ref_m, ref_s, theta, neuron, sg,
                                  recurrence=recurrence, current=current, **ref_acc)
    got_b = BACKEND.lif_backward_stateful(grad_spikes, ref_m, ref_s, theta, neuron, sg,
                                          recurrence=recurrence, current=current, **acc)
    return (ref_s, ref_m, ref_b, ref_acc), (spikes, membrane, got_b, acc)


DTYPE_MODES = [(np.float64, False), (np.float32, True), (np.float32, False), (np.float64, True)]


def _dtype_mode_id(combo):
    return f"{'f64' if combo[0] == np.float64 else 'f32'}-{'smooth' if combo[1] else 'spiking'}"


@pytest.mark.parametrize("case, dtype, smooth", rotated(CASES, DTYPE_MODES, _case_id, _dtype_mode_id))
def test_kernels_match_the_reference(case, dtype, smooth):
    before = cpu.CALLS.copy()
    ref, got = run_both(case, dtype, smooth)
    (ref_s, ref_m, (ref_g, ref_t, ref_rec), ref_acc), (s, m, (g, t, rec), acc) = ref, got
    tol = TOL[dtype]
    assert cpu.CALLS["lif_forward_stateful"] == before["lif_forward_stateful"] + 1
    assert cpu.CALLS["kernel:forward_stateful"] == before["kernel:forward_stateful"] + 1
    assert cpu.CALLS["lif_backward_stateful"] == before["lif_backward_stateful"] + 1
    assert cpu.CALLS["kernel:backward_stateful"] == before["kernel:backward_stateful"] + 1
    assert cpu.CALLS["fallback:numpy"] == before["fallback:numpy"]
    assert s.dtype == m.dtype == g.dtype == t.dtype == dtype
    if smooth:
        assert_close(s, ref_s, tol, "spikes")
    else:
        np.testing.assert_array_equal(s, ref_s)
        assert 0.02 < ref_s.mean() < 0.98, "a silent or saturated layer checks little"
    assert_close(m, ref_m, tol, "membrane")
    assert_close(g, ref_g, tol, "grad_current")
    assert_close(t, ref_t, tol, "grad_theta")
    assert sorted(rec) == sorted(ref_rec)
    for key in ref_rec:
        assert rec[key].dtype == dtype
        assert_close(rec[key], ref_rec[key], tol, key)
    for key in ref_acc:
        assert np.max(np.abs(ref_acc[key])) > 0, f"{key}: a dead gradient checks nothing"
        assert_close(acc[key], ref_acc[key], tol, key)


@pytest.mark.parametrize("B", (1, pytest.param(5, marks=pytest.mark.slow)))
def test_every_strategy_and_the_parallel_path_agree(B, monkeypatch):
    """Both strategies of each direction (``recurrent_cpu.STRATEGY``), and the fused loops
    parallel over the batch, give the reference's numbers."""
    case = ("all", True, dict(reset="soft"), ADAPT, "atan")
    ref, _ = run_both(case, np.float64, False, B=B)
    monkeypatch.setattr(cpu, "PARALLEL_MIN_ELEMENTS", 0)
    for forward in ("fused", "blas"):
        for backward in ("fused", "blas"):
            monkeypatch.setitem(recurrent_cpu.STRATEGY, "forward", forward)
            monkeypatch.setitem(recurrent_cpu.STRATEGY, "backward", backward)
            _, (s, m, (g, t, rec), acc) = run_both(case, np.float64, False, B=B)
            np.testing.assert_array_equal(s, ref[0])
            assert_close(m, ref[1], 1e-12, f"{forward}: membrane")
            for got, want, name in ((g, ref[2][0], "grad_current"), (t, ref[2][1], "grad_theta"),
                                    (rec["recurrent"], ref[2][2]["recurrent"], "recurrent")):
                assert_close(got, want, 1e-12, f"{backward}: {name}")
            for key in ref[3]:
                assert_close(acc[key], ref[3][key], 1e-12, f"{backward}: {key}")


def test_what_the_kernels_do_not_implement_runs_the_reference():
    rng = np.random.default_rng(4)
    T, B, N = 9, 2, 6
    current = rng.normal(0.3, 0.8, (T, B, N))
    theta = rng.uniform(0.3, 0.9, N)
    rec = Recurrence("all", rng.normal(0, 0.5, (N, N)))
    e = rng.normal(size=(T, B, N))
    sg = stlsim.surrogate.get("atan")

    class Custom(stlsim.surrogate.ATan):
        name = "custom"

    for neuron, surrogate in ((stlsim.LIF(tau=0.8, alpha_syn=0.5), sg),
                              (stlsim.LIF(tau=0.8, reset="zero_after_leak", detach_reset=True), sg),
                              (stlsim.LIF(tau=0.8), Custom())):
        before = cpu.CALLS.copy()
        s, m = BACKEND.lif_forward_stateful(current, theta, neuron, surrogate, False, rec)
        g, t, grads = BACKEND.lif_backward_stateful(e, m, s, theta, neuron, surrogate,
                                                    recurrence=rec, current=current)
        assert cpu.CALLS["fallback:numpy"] == before["fallback:numpy"] + 2
        assert cpu.CALLS["lif_forward_stateful"] == before["lif_forward_stateful"]
        ref_s, ref_m = lif_forward_stateful(current, theta, neuron, surrogate, False, None, rec)
        np.testing.assert_array_equal(s, ref_s)
        np.testing.assert_array_equal(m, ref_m)
    # A trained decay: the forward compiles, the backward (B7) runs the reference.
    neuron = stlsim.LIF(tau=0.8, learn_tau="factor")
    before = cpu.CALLS.copy()
    s, m = BACKEND.lif_forward_stateful(current, theta, neuron, sg, False, rec)
    grad_tau = np.zeros(N)
    BACKEND.lif_backward_stateful(e, m, s, theta, neuron, sg, recurrence=rec, current=current,
                                  grad_tau=grad_tau)
    assert cpu.CALLS["lif_forward_stateful"] == before["lif_forward_stateful"] + 1
    assert cpu.CALLS["fallback:numpy"] == before["fallback:numpy"] + 1
    assert np.any(grad_tau != 0)


NETWORKS = [
    # (layer recurrences, recurrent bias, neurons per layer)
    (("all", None), True, [stlsim.LIF(tau=0.85, theta_init=0.5,
                                      adaptation=stlsim.Adaptation(**ADAPT)),
                           stlsim.LIF(tau=0.85, theta_init=0.5)]),
    (("one", "all"), False, stlsim.LIF.preset("snntorch.Leaky", tau=0.85,
                                              adaptation=stlsim.Adaptation(beta=0.4, rho=0.9,
                                                                           learn_beta=True))),
]


@pytest.mark.parametrize("which, dtype, smooth", rotated(range(len(NETWORKS)), DTYPE_MODES, str, _dtype_mode_id))
def test_network_loss_and_grad_numba_equals_numpy(which, dtype, smooth):
    recurrent, bias, neuron = NETWORKS[which]
    sizes = (10, 14, 4)
    layers = [stlsim.Dense(a, b, init_gain=2.5, recurrent=r, recurrent_bias=bias and r == "all")
              for a, b, r in zip(sizes[:-1], sizes[1:], recurrent)]
    net = stlsim.Network(layers, neuron=neuron, surrogate="atan", seed=3, dtype=dtype)
    rng = np.random.default_rng(7)
    for key in net.params:
        if key.endswith(".theta"):
            net.params[key][:] = rng.uniform(0.2, 0.8, net.params[key].shape)
    x = (rng.random((30, 4, sizes[0])) < 0.3).astype(dtype)
    y = np.array([0, 1, 2, 3])
    tol = TOL[dtype]
    ref_loss, ref_grads, ref_record = net.loss_and_grad(x, y, smooth=smooth, backend="numpy",
                                                        return_record=True)
    before = cpu.CALLS.copy()
    loss, grads, record = net.loss_and_grad(x, y, smooth=smooth, backend="numba",
                                            return_record=True)
    n_stateful = 1 if which == 0 else 2        # network 0's layer 1: the feed-forward kernels
    assert cpu.CALLS["lif_forward_stateful"] == before["lif_forward_stateful"] + n_stateful
    assert cpu.CALLS["lif_backward_stateful"] == before["lif_backward_stateful"] + n_stateful
    assert cpu.CALLS["fallback:numpy"] == before["fallback:numpy"]
    assert cpu.CALLS["fused_loss_and_grad"] == before["fused_loss_and_grad"]
    assert abs(loss - ref_loss) <= tol * max(1.0, abs(ref_loss))
    assert sorted(grads) == sorted(ref_grads)
    assert {"0.recurrent", "0.adapt_beta"} <= set(grads)
    for key in ref_grads:
        assert grads[key].dtype == dtype, key
        assert np.max(np.abs(ref_grads[key])) > 0, f"{key}: a dead gradient checks nothing"
        assert_close(grads[key], ref_grads[key], tol, key)
    for a, b in zip(record.spikes, ref_record.spikes):
        if smooth:
            assert_close(a, b, tol, "spikes")
        else:
            np.testing.assert_array_equal(a, b)


def test_backend_fields_and_the_other_backends():
    assert BACKEND.lif_forward_stateful is numba_backend.lif_forward_stateful
    assert BACKEND.lif_backward_stateful is numba_backend.lif_backward_stateful
    numpy_backend = get_backend("numpy")
    assert numpy_backend.lif_forward_stateful is None and numpy_backend.lif_backward_stateful is None
