"""Every surrogate of the peers (docs/model.md (S1)-(S18)) in the compiled kernels.

* ``kernels.scalar``: each code's (P, P') equals ``stlsim.surrogate``'s NumPy pair (float64,
  1e-12 relative) at points on both sides of every kink, the two-parameter ones ((S4), (S6),
  (S11), (S13), (S15)) included.
* The Numba backend's per-layer kernels with each of them equal the NumPy reference
  (float64 1e-12, float32 1e-5; spikes equal), and the counters prove the kernel ran.
* A surrogate the kernels do not know (user-defined) falls back to the reference, counted
  as "fallback:numpy". (tests/test_surrogates_compiled.py: the two-parameter ones in the
  recurrent, fused, event and CUDA-simulator kernels.)
"""
from __future__ import annotations

import numpy as np
import pytest

import stlsim
from stlsim import surrogate as surrogates
from stlsim.engines.backend import kernel_surrogate
from stlsim.kernels import scalar

# parameters inside each one's domain, away from its default where that is extreme; the
# two-parameter ones with a second parameter that moves a kink into the sampled range
PARAMS = {"StraightThrough": (0.7,), "SignedConstant": (0.8,), "SpikeGate": (1.3,),
          "LeakyGate": (0.1,), "PiecewiseQuadratic": (1.5,), "PiecewiseExp": (2.0,),
          "SoftSign": (2.0,), "Erf": (2.0,), "LogAbs": (1.5,), "QPseudoSpike": (2.5,),
          "HeaviTanh": (3.0,), "Circ": (1.5,), "HeaviErfc": (2.0,),
          "SpikeRateEscape": (3.0, 2.0), "SparseFastSigmoid": (4.0, -0.3),
          "PiecewiseLeakyReLU": (0.8, 0.05), "S2NN": (4.0, 1.5), "LeakyKReLU": (1.2, 0.1)}
PEERS = list(surrogates.PEER_SURROGATES)
X = np.concatenate([np.linspace(-3, 3, 121), [0.0, 1 / 1.5, -1 / 1.5, 1e-9, -1e-9, 1.0, -0.3,
                                               0.8, -0.8]])


def test_every_peer_surrogate_has_a_kernel_code():
    assert {cls.__name__ for cls in PEERS} == set(PARAMS)
    assert all(kernel_surrogate(cls()) is not None for cls in PEERS)
    assert len({kernel_surrogate(cls())[0] for cls in PEERS}) == len(PEERS)   # one code each
    assert kernel_surrogate(surrogates.S2NN(4.0, 1.5))[1:] == (4.0, 1.5)     # both parameters
    assert scalar.NORSE_SQRT_PI == surrogates.NORSE_SQRT_PI


@pytest.mark.parametrize("cls", PEERS, ids=lambda c: c.__name__)
def test_scalar_pair_equals_the_numpy_reference(cls):
    sg = cls(*PARAMS[cls.__name__])
    code, param, param2 = kernel_surrogate(sg)
    ref_p, ref_d = sg.primitive(X), sg.derivative(X)
    got_p = np.array([scalar.surrogate_primitive(code, float(x), param, param2) for x in X])
    got_d = np.array([scalar.surrogate_derivative(code, float(x), param, param2) for x in X])
    np.testing.assert_allclose(got_p, ref_p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got_d, ref_d, rtol=1e-12, atol=1e-15)


numba = pytest.importorskip("numba")
from stlsim.engines import get_backend  # noqa: E402
from stlsim.kernels import cpu  # noqa: E402

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _layer_case(dtype, seed=0):
    rng = np.random.default_rng(seed)
    current = rng.normal(0.3, 0.8, (7, 4, 11)).astype(dtype)
    theta = rng.uniform(0.2, 1.0, (11,)).astype(dtype)
    grad_s = rng.normal(size=current.shape).astype(dtype)
    return current, theta, grad_s


def _close(got, ref, tol, what):
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    err = float(np.max(np.abs(np.asarray(got, np.float64) - ref)))
    assert err <= tol * scale, f"{what}: {err:.3e} of {scale:.3e}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls", PEERS, ids=lambda c: c.__name__)
def test_numba_kernels_with_peer_surrogates_match_the_reference(cls, dtype):
    from stlsim.engines.clock import lif_forward as ref_forward
    from stlsim.grad.bptt import lif_backward as ref_backward
    backend = get_backend("numba")
    sg = cls(*PARAMS[cls.__name__])
    neuron = stlsim.LIF(tau=0.7, reset="soft", detach_reset=False)
    current, theta, grad_s = _layer_case(dtype)
    for smooth in (False, True):
        before = dict(cpu.CALLS)
        spikes, membrane = backend.lif_forward(current, theta, neuron, sg, smooth=smooth)
        grad_current, grad_theta = backend.lif_backward(grad_s, membrane, spikes, theta, neuron, sg)
        assert cpu.CALLS["lif_forward"] == before.get("lif_forward", 0) + 1   # the kernels ran
        assert cpu.CALLS["lif_backward"] == before.get("lif_backward", 0) + 1
        assert cpu.CALLS.get("fallback:numpy", 0) == before.get("fallback:numpy", 0)
        ref_s, ref_m = ref_forward(current, theta, neuron, sg, smooth)
        ref_gc, ref_gt = ref_backward(grad_s, ref_m, ref_s, theta, neuron, sg)
        if smooth:
            _close(spikes, ref_s, TOL[dtype], "spikes")
        else:
            np.testing.assert_array_equal(spikes, ref_s)
            assert 0.05 < ref_s.mean() < 0.95
        _close(membrane, ref_m, TOL[dtype], "membrane")
        _close(grad_current, ref_gc, TOL[dtype], "grad_current")
        _close(grad_theta, ref_gt, TOL[dtype], "grad_theta")


def test_an_unknown_surrogate_falls_back_counted():
    class Custom(surrogates.S2NN):      # a user's subclass: no kernel code, even of a known pair
        name = "custom"
    backend = get_backend("numba")
    neuron = stlsim.LIF(tau=0.7)
    current, theta, _ = _layer_case(np.float64)
    assert kernel_surrogate(Custom()) is None
    before = cpu.CALLS.copy()
    spikes, membrane = backend.lif_forward(current, theta, neuron, Custom(), smooth=True)
    assert cpu.CALLS["fallback:numpy"] == before["fallback:numpy"] + 1
    assert cpu.CALLS["lif_forward"] == before["lif_forward"]
    from stlsim.engines.clock import lif_forward as ref_forward
    ref_s, ref_m = ref_forward(current, theta, neuron, Custom(), True)
    np.testing.assert_array_equal(spikes, ref_s)
    np.testing.assert_array_equal(membrane, ref_m)
