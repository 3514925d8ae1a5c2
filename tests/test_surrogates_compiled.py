"""The peers' two-parameter surrogates in every compiled kernel (docs/model.md (S4), (S6),
(S11), (S13), (S15); 9.11).

``tests/test_interop_kernels.py`` holds each code's scalar pair to the NumPy pair and the
per-layer kernels to the reference. Here, for the five two-parameter ones:

* the fused training step (``engines.fused_cpu``) equals the NumPy backend, and its smooth-
  mode BPTT equals float64 finite differences;
* the stateful kernels (``kernels.recurrent_cpu``: recurrence and adaptation) equal the
  reference (float64 1e-12, float32 1e-5 of each tensor's scale; spikes equal);
* the event engine's backward equals the clock engine's (1e-10, as tests/test_event_engine.py);
* the CUDA kernels in Numba's simulator equal the reference;
* the second parameter reaches the kernels (another value, another gradient).

Counters prove that the compiled path ran: "fallback:numpy" (and the event engine's
"fallback") do not move.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import stlsim
from stlsim import surrogate as S
from stlsim.engines.backend import kernel_surrogate
from stlsim.grad.check import compare, finite_difference_grads, max_relative_error

pytest.importorskip("numba")

from stlsim.engines import event, get_backend  # noqa: E402
from stlsim.engines.clock import lif_forward_stateful  # noqa: E402
from stlsim.grad.bptt import lif_backward_stateful  # noqa: E402
from stlsim.kernels import cpu  # noqa: E402
from stlsim.layers.base import Recurrence  # noqa: E402

from conftest import assert_close, rotated  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
# each with a second parameter that moves its kink (or its second slope) into the range
# the membranes visit: x = m - theta mostly in (-2, 2)
TWO_PARAMETERS = [S.SpikeRateEscape(3.0, 2.0), S.SparseFastSigmoid(4.0, -0.3),
                  S.PiecewiseLeakyReLU(0.8, 0.05), S.S2NN(4.0, 1.5), S.LeakyKReLU(1.2, 0.1)]
# the same surrogates with only the second parameter changed
OTHER_SECOND = [S.SpikeRateEscape(3.0, 0.5), S.SparseFastSigmoid(4.0, 0.2),
                S.PiecewiseLeakyReLU(0.8, 0.3), S.S2NN(4.0, 0.5), S.LeakyKReLU(1.2, 0.6)]
TOL = {np.float64: 1e-12, np.float32: 1e-5}
BACKEND = get_backend("numba")
ids = [type(sg).__name__ for sg in TWO_PARAMETERS]


def test_the_five_are_the_two_parameter_peer_surrogates_and_have_codes():
    assert {type(sg) for sg in TWO_PARAMETERS} == {
        cls for cls in S.PEER_SURROGATES if cls.second_name is not None}
    for sg, other in zip(TWO_PARAMETERS, OTHER_SECOND):
        code, param, param2 = kernel_surrogate(sg)
        assert (param, param2) == sg.values
        assert kernel_surrogate(other)[:2] == (code, param) and kernel_surrogate(other)[2] != param2


def _dense_net(sg, backend, seed=0):
    layers = [stlsim.Dense(6, 9, init_gain=2.0), stlsim.Dense(9, 4, init_gain=2.0)]
    neuron = stlsim.LIF(tau=0.6, theta_init=0.4, reset="soft")
    return stlsim.Network(layers, neuron=neuron, surrogate=sg, population=2, seed=seed,
                          backend=backend)


X_DENSE = (np.random.default_rng(1).random((8, 3, 6)) < 0.5).astype(np.float64)
Y_DENSE = np.array([0, 1, 1])


@pytest.mark.parametrize("sg", TWO_PARAMETERS, ids=ids)
def test_fused_step_equals_the_reference_and_smooth_bptt_finite_differences(sg):
    net = _dense_net(sg, "numba")
    reference = _dense_net(sg, "numpy")
    for smooth in (False, True):
        before = cpu.CALLS.copy()
        loss, grads = net.loss_and_grad(X_DENSE, Y_DENSE, smooth=smooth)
        assert cpu.CALLS["fused_loss_and_grad"] == before["fused_loss_and_grad"] + 1
        assert cpu.CALLS["fallback:numpy"] == before["fallback:numpy"]
        ref_loss, ref_grads = reference.loss_and_grad(X_DENSE, Y_DENSE, smooth=smooth)
        assert abs(loss - ref_loss) <= 1e-12 * max(abs(ref_loss), 1e-30)
        for key in ref_grads:
            assert np.max(np.abs(ref_grads[key])) > 0, f"{key}: a dead gradient checks nothing"
            assert_close(grads[key], ref_grads[key], 1e-12, key)
    # smooth mode: the compiled BPTT is the true gradient of the compiled forward
    fd = finite_difference_grads(net, X_DENSE, Y_DENSE, step=1e-5)
    errors = compare(grads, fd)
    assert max(e["max_rel"] for e in errors.values()) <= 1e-6, errors


@pytest.mark.parametrize("sg,other", list(zip(TWO_PARAMETERS, OTHER_SECOND)), ids=ids)
def test_the_second_parameter_reaches_the_kernels(sg, other):
    # the same network and input, only the second parameter changed: the kernels' gradients
    # change, and equal the reference's for each value
    grads = []
    for surrogate in (sg, other):
        before = cpu.CALLS.copy()
        _, got = _dense_net(surrogate, "numba").loss_and_grad(X_DENSE, Y_DENSE)
        assert cpu.CALLS["fused_loss_and_grad"] == before["fused_loss_and_grad"] + 1
        _, ref = _dense_net(surrogate, "numpy").loss_and_grad(X_DENSE, Y_DENSE)
        for key in ref:
            assert_close(got[key], ref[key], 1e-12, key)
        grads.append(got)
    assert any(max_relative_error(grads[0][key], grads[1][key]) > 1e-3 for key in grads[0])


def _stateful_layer(dtype, T=20, B=3, N=10, seed=0):
    rng = np.random.default_rng(seed)
    neuron = stlsim.LIF(tau=0.8, reset="soft",
                        adaptation=stlsim.Adaptation(beta=0.6, rho=0.8, learn_beta=True,
                                                     learn_rho=True))
    current = rng.normal(0.3, 0.7, (T, B, N)).astype(dtype)
    theta = rng.uniform(0.3, 1.0, N).astype(dtype)
    # Recurrent weights of std 0.25: with 0.5 the smooth-mode gradients of SpikeRateEscape and
    # S2NN grow ~100x over the 20 steps, and the float32 reference itself then differs from
    # float64 by 1e-5-3e-5 of their scale (the kernel from it by as much: sigma' is evaluated
    # in float64 there, in float32 by NumPy); at 0.25 both stay below 6e-6.
    recurrence = Recurrence("all", rng.normal(0.0, 0.25, (N, N)).astype(dtype), None)
    grad_spikes = rng.normal(size=(T, B, N)).astype(dtype)
    return neuron, current, theta, recurrence, grad_spikes


@pytest.mark.parametrize("sg, dtype", rotated(TWO_PARAMETERS, [(np.float64,), (np.float32,)], lambda sg: type(sg).__name__,
                                              lambda combo: "f64" if combo[0] == np.float64 else "f32"))
def test_stateful_kernels_equal_the_reference(sg, dtype):
    neuron, current, theta, recurrence, grad_spikes = _stateful_layer(dtype)
    tol = TOL[dtype]
    for smooth in (False, True):
        before = cpu.CALLS.copy()
        spikes, membrane = BACKEND.lif_forward_stateful(current, theta, neuron, sg, smooth,
                                                        recurrence)
        acc = {"grad_beta": np.zeros(theta.size), "grad_rho": np.zeros(theta.size)}
        grad, grad_theta, rec = BACKEND.lif_backward_stateful(
            grad_spikes, membrane, spikes, theta, neuron, sg, recurrence=recurrence,
            current=current, **acc)
        assert cpu.CALLS["kernel:forward_stateful"] == before["kernel:forward_stateful"] + 1
        assert cpu.CALLS["kernel:backward_stateful"] == before["kernel:backward_stateful"] + 1
        assert cpu.CALLS["fallback:numpy"] == before["fallback:numpy"]
        ref_s, ref_m = lif_forward_stateful(current, theta, neuron, sg, smooth, None, recurrence)
        ref_acc = {"grad_beta": np.zeros(theta.size), "grad_rho": np.zeros(theta.size)}
        ref_g, ref_t, ref_rec = lif_backward_stateful(
            grad_spikes, ref_m, ref_s, theta, neuron, sg, recurrence=recurrence,
            current=current, **ref_acc)
        if smooth:
            assert_close(spikes, ref_s, tol, "spikes")
        else:
            np.testing.assert_array_equal(spikes, ref_s)
            assert 0.02 < ref_s.mean() < 0.98, "a silent or saturated layer checks little"
        assert_close(membrane, ref_m, tol, "membrane")
        assert_close(grad, ref_g, tol, "grad_current")
        assert_close(grad_theta, ref_t, tol, "grad_theta")
        for key in ref_rec:
            assert_close(rec[key], ref_rec[key], tol, key)
        for key in ref_acc:
            assert np.max(np.abs(ref_acc[key])) > 0, f"{key}: a dead gradient checks nothing"
            assert_close(acc[key], ref_acc[key], tol, key)


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("sg", TWO_PARAMETERS, ids=ids)
def test_event_engine_equals_the_clock_engine(sg, reset):
    rng = np.random.default_rng(7)
    layers = [stlsim.Dense(30, 40, init_gain=1.5), stlsim.Dense(40, 12, init_gain=1.5)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(tau=0.5, theta_init=0.4, reset=reset),
                         surrogate=sg, seed=0, backend="numpy")
    x = (rng.random((20, 4, 30)) < 0.15).astype(np.float64)
    y = np.array([0, 3, 5, 11])
    before = event.CALLS.copy()
    loss_clock, grads_clock = net.loss_and_grad(x, y, engine="clock")
    loss_event, grads_event = net.loss_and_grad(x, y, engine="event")
    assert event.CALLS["backward"] == before["backward"] + 1            # the event kernels ran
    assert event.CALLS["fallback"] == before["fallback"]
    assert loss_clock == loss_event
    for key in grads_clock:
        assert np.max(np.abs(grads_clock[key])) > 0, f"{key}: a dead gradient checks nothing"
        assert max_relative_error(grads_clock[key], grads_event[key]) <= 1e-10, key


# --- the CUDA kernels, in Numba's simulator (a subprocess: NUMBA_ENABLE_CUDASIM is read when
# numba is imported; tests/test_cuda_sim.py explains) ------------------------------------------

_CUDA_SCRIPT = """
import numpy as np
import stlsim
from stlsim import surrogate as S
from stlsim.engines import cuda_backend
from stlsim.engines.clock import lif_forward
from stlsim.grad.bptt import lif_backward
TOL = {np.float64: 1e-12, np.float32: 1e-5}
def close(got, ref, tol):
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref))) <= tol * max(float(np.max(np.abs(ref))), 1e-30)
rng = np.random.default_rng(0)
failed = []
for sg in (%s):
    for dtype in (np.float64, np.float32):
        current = rng.normal(0.3, 0.8, (6, 2, 5)).astype(dtype)
        theta = rng.uniform(0.2, 1.0, 5).astype(dtype)
        grad_s = rng.normal(size=current.shape).astype(dtype)
        neuron = stlsim.LIF(tau=0.7, reset="soft")
        for smooth in (False, True):
            s, m = cuda_backend.lif_forward(current, theta, neuron, sg, smooth)
            g, t = cuda_backend.lif_backward(grad_s, m, s, theta, neuron, sg)
            rs, rm = lif_forward(current, theta, neuron, sg, smooth)
            rg, rt = lif_backward(grad_s, rm, rs, theta, neuron, sg)
            tol = TOL[dtype]
            same_spikes = close(s, rs, tol) if smooth else np.array_equal(s, rs)
            if not (same_spikes and close(m, rm, tol) and close(g, rg, tol) and close(t, rt, tol)):
                failed.append((repr(sg), dtype.__name__, smooth))
calls = cuda_backend.CALLS
print("FAILED", failed)
print("CALLS", calls.get("kernel:lif_backward", 0), calls.get("fallback:numpy", 0))
"""


def test_cuda_kernels_in_the_simulator_equal_the_reference():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    if subprocess.run([sys.executable, "-c", "import numba.cuda"], env=env,
                      capture_output=True).returncode != 0:
        pytest.skip("numba.cuda does not import (pip install 'stlsim[cuda]')")
    code = _CUDA_SCRIPT % ", ".join(f"S.{type(sg).__name__}{sg.values}" for sg in TWO_PARAMETERS)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "FAILED []" in done.stdout, done.stdout
    n_runs = len(TWO_PARAMETERS) * 2 * 2
    assert f"CALLS {n_runs} 0" in done.stdout, done.stdout     # every backward on the kernel
