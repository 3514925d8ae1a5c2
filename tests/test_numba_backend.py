"""The "numba" backend against the NumPy reference (docs/performance.md).

Budgets: float64 within 1e-12 of the largest reference entry of each tensor, float32
within 1e-5; spikes equal in spiking mode (the recursion rounds exactly like NumPy).
The fast paths must actually run (``get_backend("numba").calls``), parallel must equal
serial bitwise, and ``import stlsim`` must not import numba.
"""
from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

import stlsim  # noqa: E402
from stlsim.engines import get_backend  # noqa: E402
from stlsim.kernels import cpu, scalar  # noqa: E402

BACKEND = get_backend("numba")
assert BACKEND.calls is cpu.CALLS          # one counter: entry points and kernels

RESETS = ("hard", "soft")
SURROGATES = ("atan", "sigmoid", "rectangular", "superspike")
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def make_case(*, dtype=np.float64, reset="hard", detach=False, surrogate="atan", sizes=(9, 12, 6),
              population=2, T=7, B=5, bias=True, seed=0):
    layers = [stlsim.Dense(a, b, init_gain=2.0, bias=bias) for a, b in zip(sizes[:-1], sizes[1:])]
    neuron = stlsim.LIF(tau=0.6, theta_init=0.4, reset=reset, detach_reset=detach)
    net = stlsim.Network(layers, neuron=neuron, surrogate=surrogate, population=population,
                         seed=seed, dtype=dtype, backend="numba")
    rng = np.random.default_rng(seed + 100)
    for key in net.params:
        if key.endswith(".theta"):
            net.params[key][:] = rng.uniform(-0.3, 1.0, net.params[key].shape)  # some <= 0
    x = (rng.random((T, B, sizes[0])) < 0.5).astype(dtype)
    y = rng.integers(0, net.n_classes, B)
    return net, x, y


def assert_close(got, ref, tol, what=""):
    scale = max(float(np.max(np.abs(ref))), 1e-30) if np.size(ref) else 1.0
    err = float(np.max(np.abs(np.asarray(got, np.float64) - ref))) if np.size(ref) else 0.0
    assert err <= tol * scale, f"{what}: max abs err {err:.3e}, max |ref| {scale:.3e}"


GRID = list(itertools.product((np.float64, np.float32), RESETS, (False, True), SURROGATES,
                              (False, True)))


@pytest.mark.parametrize("dtype,reset,detach,surrogate,smooth", GRID)
def test_numba_matches_numpy(dtype, reset, detach, surrogate, smooth):
    net, x, y = make_case(dtype=dtype, reset=reset, detach=detach, surrogate=surrogate)
    tol = TOL[dtype]
    ref_loss, ref_grads, ref_rec = net.loss_and_grad(x, y, backend="numpy", smooth=smooth,
                                                     return_record=True)
    before = cpu.CALLS.copy()
    fused_loss, fused_grads = net.loss_and_grad(x, y, smooth=smooth)              # fused path
    layer_loss, layer_grads, rec = net.loss_and_grad(x, y, smooth=smooth, return_record=True)
    assert cpu.CALLS["fused_loss_and_grad"] == before["fused_loss_and_grad"] + 1
    assert cpu.CALLS["lif_backward"] == before["lif_backward"] + 2             # per-layer path
    for loss, grads in ((fused_loss, fused_grads), (layer_loss, layer_grads)):
        assert abs(loss - ref_loss) <= tol * max(1.0, abs(ref_loss))
        for key in ref_grads:
            assert grads[key].dtype == dtype
            assert_close(grads[key], ref_grads[key], tol, key)
    assert any(np.max(np.abs(g)) > 0 for g in ref_grads.values()), "a dead net checks nothing"
    for a, b in zip(rec.spikes, ref_rec.spikes):
        if smooth:
            assert_close(a, b, tol, "spikes")
        else:
            np.testing.assert_array_equal(a, b)
            assert 0.02 < b.mean() < 0.98
    for a, b in zip(rec.membrane, ref_rec.membrane):
        assert_close(a, b, tol, "membrane")


@pytest.mark.parametrize("depth", (1, 2, 3, 4))
@pytest.mark.parametrize("smooth", (False, True))
@pytest.mark.parametrize("fresh_workspace", (False, True))
def test_fused_step_of_every_depth_matches_numpy(depth, smooth, fresh_workspace, monkeypatch):
    """The fused step's buffers (spikes alternating between two scratch buffers by layer,
    the output layer's (B4) reading the last hidden layer's float spikes where they were
    written, the adjoints alternating in the backward) on 1-4 layers; also with a
    workspace that hands out a new NaN-filled array at every lookup, as a full workspace
    does once it is cleared in the middle of a step (``_workspace.MAX_BUFFERS``): the step
    must hold what it wrote, never look it up again by name."""
    from stlsim.engines import fused_cpu
    if fresh_workspace:
        monkeypatch.setattr(fused_cpu, "_buffer", lambda name, shape, dtype: np.full(
            shape, np.nan if np.dtype(dtype).kind == "f" else 7, dtype))
    sizes = (9, 12, 7, 11, 6)[:depth] + (6,)
    net, x, y = make_case(sizes=sizes, population=1)
    ref_loss, ref_grads = net.loss_and_grad(x, y, backend="numpy", smooth=smooth)
    before = cpu.CALLS["fused_loss_and_grad"]
    loss, grads = net.loss_and_grad(x, y, smooth=smooth)
    assert cpu.CALLS["fused_loss_and_grad"] == before + 1
    assert abs(loss - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
    for key in ref_grads:
        assert_close(grads[key], ref_grads[key], 1e-12, key)
    assert all(np.max(np.abs(ref_grads[f"{i}.weight"])) > 0 for i in range(depth)), "a dead layer checks nothing"


def test_per_layer_kernels_match_reference_on_odd_shapes():
    """lif_forward / lif_backward with (T, B, C, H, W) arrays, B = 1, T = 1, theta <= 0."""
    from stlsim.engines.clock import lif_forward as ref_forward
    from stlsim.grad.bptt import lif_backward as ref_backward
    rng = np.random.default_rng(3)
    for shape, reset in (((6, 1, 3, 4, 5), "soft"), ((1, 4, 37), "hard"), ((9, 3, 1), "hard")):
        neuron = stlsim.LIF(tau=0.7, reset=reset, detach_reset=False)
        sg = stlsim.surrogate.get("superspike")
        current = rng.normal(0.3, 1.0, shape)
        theta = rng.uniform(-0.5, 1.0, shape[2:])
        theta.flat[0] = 0.0
        current[:, :, ...].flat[0] = 0.0          # m = theta = 0 at t = 0: H(0) = 1
        spikes, membrane = BACKEND.lif_forward(current, theta, neuron, sg)
        ref_s, ref_m = ref_forward(current, theta, neuron, sg)
        np.testing.assert_array_equal(spikes, ref_s)
        assert_close(membrane, ref_m, 1e-12, "membrane")
        grad_s = rng.normal(size=shape)
        gm, gt = BACKEND.lif_backward(grad_s, membrane, spikes, theta, neuron, sg)
        ref_gm, ref_gt = ref_backward(grad_s, ref_m, ref_s, theta, neuron, sg)
        assert gm.shape == shape and gt.shape == shape[2:]
        assert_close(gm, ref_gm, 1e-12, "grad_membrane")
        assert_close(gt, ref_gt, 1e-12, "grad_theta")


def test_float32_kernels_compute_in_float32():
    """The scalar math of the default kernels keeps float32 data in float32, as NumPy does
    (``scalar.cast_like``); a plain float literal would make it float64 (half the vector
    width, float64 divisions: a plain loop of the atan backward ran 6x slower so). The
    types are read from
    Numba's own signatures, and the surrogate is the reference bit for bit."""
    import numba
    from stlsim.kernels import _jit
    _jit.register_scalar()

    @numba.njit
    def derivative(x, alpha):
        return scalar.atan_derivative(x, alpha)

    @numba.njit
    def backward(e, delta_next, m, s, theta, tau, gain, v_reset):
        return scalar.lif_backward_step_general(e, delta_next, m, s, theta, tau, gain, v_reset,
                                                scalar.HARD, False, True, True, scalar.ATAN, 2.0)

    @numba.njit
    def forward(current, v, theta, tau, gain, v_reset):
        return scalar.lif_forward_step_general(current, v, v, theta, tau, tau, gain, v_reset,
                                               scalar.HARD, False, True, True, True, False,
                                               scalar.ATAN, 2.0)

    f32 = np.float32
    xs = np.linspace(-3, 3, 101, dtype=f32)
    got = np.array([derivative(x, 2.0) for x in xs])
    assert derivative.nopython_signatures[0].return_type == numba.float32
    np.testing.assert_array_equal(got, stlsim.surrogate.get("atan").derivative(xs))
    backward(f32(0.3), f32(0.2), f32(1.1), np.uint8(1), f32(0.5), f32(0.7), 1.5, -0.2)
    assert all(t == numba.float32 for t in backward.nopython_signatures[0].return_type)
    forward(f32(0.3), f32(0.2), f32(0.5), f32(0.7), 1.5, -0.2)
    assert all(t == numba.float32 for t in forward.nopython_signatures[0].return_type)
    backward(0.3, 0.2, 1.1, 1.0, 0.5, 0.7, 1.5, -0.2)                   # float64 stays float64
    assert all(t == numba.float64 for t in backward.nopython_signatures[1].return_type)


@pytest.mark.parametrize("dtype,reset,gain,B", [(np.float32, "hard", 1.0, 64), (np.float64, "soft", 1.0, 3),
                                                 (np.float32, "subtract_after_leak", 1.5, 2),
                                                 (np.float64, "hard", 0.8, 40)])
def test_in_place_kernels_equal_the_two_array_kernels(dtype, reset, gain, B):
    """What the fused step runs: the forward kernel turning I_t into m_t in the same array,
    the backward kernel turning e_t into dL/dI_t; bit for bit the kernels that write a
    second array (serial and parallel lanes: B = 2, 3 and 40, 64)."""
    from stlsim.engines.backend import neuron_spec
    rng = np.random.default_rng(5)
    T, N = 6, 300
    neuron = stlsim.LIF(tau=0.7, reset=reset, input_gain=gain)
    theta = rng.uniform(0.2, 1.0, N).astype(dtype)
    spec = neuron_spec(neuron, theta, dtype)
    kind, param = scalar.ATAN, 2.0
    current = rng.normal(0.4, 1.0, (T, B, N)).astype(dtype)
    grad_s = rng.normal(size=(T, B, N)).astype(dtype)
    outputs = {}
    for inplace in (False, True):
        membrane = current.copy() if inplace else np.empty_like(current)
        spikes, compact = np.empty_like(current), np.empty((T, B, N), np.uint8)
        cpu.forward(membrane if inplace else current, theta, spec, False, kind, param, 0.0, membrane,
                    spikes, np.empty((2, B, N), dtype), compact)
        grad_current = grad_s.copy() if inplace else np.empty_like(grad_s)
        grad_theta = np.empty(N, dtype)
        cpu.backward(grad_current if inplace else grad_s, membrane, compact, theta, spec, kind, param, 0.0,
                     grad_current, np.empty((B, N), dtype), np.empty((B, N), dtype), grad_theta)
        outputs[inplace] = (membrane, spikes, grad_current, grad_theta)
    assert any(key[-2] is True and key[0] == "forward" for key in cpu._KERNELS)   # the in-place kernels ran
    assert any(key[-2] is True and key[0] == "backward" for key in cpu._KERNELS)
    assert 0.05 < outputs[False][1].mean() < 0.95
    for name, a, b in zip(("membrane", "spikes", "grad_current", "grad_theta"), outputs[False], outputs[True]):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert not np.array_equal(outputs[True][2], grad_s)                  # e_t was overwritten


@pytest.mark.parametrize("dtype", (np.float64, np.float32))
@pytest.mark.parametrize("B", (1, 64))
def test_parallel_equals_serial_bitwise(dtype, B, monkeypatch):
    import numba
    monkeypatch.setattr(cpu, "PARALLEL_MIN_ELEMENTS", 0)     # small layers run parallel too
    net, x, y = make_case(dtype=dtype, sizes=(30, 200, 10), population=1, T=6, B=B, reset="soft")
    results = {}
    threads = numba.get_num_threads()
    try:
        for mode, n_threads in (("serial", 1), ("parallel", 1), ("parallel", threads)):
            cpu.set_mode(mode)
            numba.set_num_threads(n_threads)
            loss, grads = net.loss_and_grad(x, y)
            _, layer_grads, _ = net.loss_and_grad(x, y, return_record=True)
            results[(mode, n_threads)] = (loss, grads, layer_grads)
    finally:
        cpu.set_mode("parallel")
        numba.set_num_threads(threads)
    (loss0, grads0, layer0), *others = results.values()
    for loss, grads, layer in others:
        assert loss == loss0
        for key in grads0:
            np.testing.assert_array_equal(grads[key], grads0[key])
            np.testing.assert_array_equal(layer[key], layer0[key])


def test_fallbacks_and_workspace_isolation():
    # Not Dense-only: the per-layer kernels run (fused path declines).
    layers = [stlsim.Dense(8, 10), stlsim.Dropout(0.3), stlsim.Dense(10, 4)]
    net = stlsim.Network(layers, neuron=stlsim.LIF(theta_init=0.3), backend="numba", seed=2)
    rng = np.random.default_rng(0)
    x, y = (rng.random((5, 3, 8)) < 0.5).astype(float), np.array([0, 1, 3])
    before = cpu.CALLS.copy()
    _, grads = net.loss_and_grad(x, y, training=True)
    assert cpu.CALLS["fused_loss_and_grad"] == before["fused_loss_and_grad"]
    assert cpu.CALLS["lif_backward"] == before["lif_backward"] + 2
    net.rng = np.random.default_rng([net.seed, 1])
    _, ref = net.loss_and_grad(x, y, training=True, backend="numpy")
    net.rng = np.random.default_rng([net.seed, 1])
    _, again = net.loss_and_grad(x, y, training=True)
    for key in ref:
        assert_close(again[key], ref[key], 1e-12, key)

    # A surrogate the kernels do not know: the NumPy reference runs instead.
    class Custom(stlsim.surrogate.ATan):
        name = "custom"
    net, x, y = make_case()
    net.surrogate = Custom()
    before = cpu.CALLS.copy()
    net.loss_and_grad(x, y)
    net.forward(x)
    ran = {key: n for key, n in cpu.CALLS.items() if not key.startswith("fallback")}
    assert ran == {key: n for key, n in before.items() if not key.startswith("fallback")}
    assert cpu.CALLS["fallback:numpy"] == before["fallback:numpy"] + 6   # 2 layers, 3 passes

    # Results never alias the reused workspace.
    net, x, y = make_case(sizes=(9, 12, 6))
    loss1, grads1 = net.loss_and_grad(x, y)
    kept = {k: v.copy() for k, v in grads1.items()}
    net.loss_and_grad(1 - x, y)
    for key in kept:
        np.testing.assert_array_equal(grads1[key], kept[key])


def test_scalar_functions_are_the_reference_math():
    xs = np.linspace(-2.0, 2.0, 81)
    for name in SURROGATES:
        sg = stlsim.surrogate.get(name)
        code = scalar.SURROGATE_CODES[name]
        prim = [scalar.surrogate_primitive(code, float(v), sg.value) for v in xs]
        der = [scalar.surrogate_derivative(code, float(v), sg.value) for v in xs]
        np.testing.assert_allclose(prim, sg.primitive(xs), rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(der, sg.derivative(xs), rtol=1e-15, atol=1e-15)
    assert scalar.heaviside(0.0) == 1.0 and scalar.heaviside(-1e-300) == 0.0
    m, s, v = scalar.lif_forward_step(1.0, 2.0, 1.5, 0.5, True, False, scalar.ATAN, 2.0)
    assert (m, s, v) == (2.0, 1.0, 0.0)
    m, s, v = scalar.lif_forward_step(1.0, 2.0, 1.5, 0.5, False, False, scalar.ATAN, 2.0)
    assert (m, s, v) == (2.0, 1.0, 0.5)
    # (B1)-(B3h) by hand: eps = 0.5 * 0.2, g = e - m eps, delta = g sigma' + eps (1 - s)
    delta, term = scalar.lif_backward_step(0.3, 0.2, 2.0, 1.0, 1.5, 0.5, True, False,
                                           scalar.RECTANGULAR, 2.0)
    assert math.isclose(delta, (0.3 - 2.0 * 0.1) * 0.5) and math.isclose(term, 0.05)


def test_lazy_import_auto_backend_and_threads():
    code = ("import sys, stlsim; assert 'numba' not in sys.modules; "
            "stlsim.set_num_threads(1); assert 'numba' not in sys.modules; "
            "net = stlsim.Network([stlsim.Dense(3, 2)]); print(net.backend); "
            "print(stlsim.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["numba", "1"]
    assert stlsim.Network([stlsim.Dense(3, 2)], backend="auto").backend == "numba"
    with pytest.raises(ValueError, match="`n` of `set_num_threads`"):
        stlsim.set_num_threads(0)


def test_a_threading_layer_started_before_stlsim_is_reported():
    # numba.get_num_threads() starts Numba's threads with its default layer (OpenMP here);
    # stlsim can then not select workqueue, and says so instead of running slower silently.
    code = ("import warnings, numba\n"
            "numba.get_num_threads()\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import stlsim.kernels.cpu\n"
            "print(numba.threading_layer(), any('threading layer' in str(w.message) for w in caught))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in __import__("os").environ.items()
                              if k != "NUMBA_THREADING_LAYER"})
    layer, warned = out.stdout.split()
    assert warned == ("True" if layer != "workqueue" else "False")
    code = "import stlsim, numba; stlsim.get_num_threads(); print(numba.threading_layer())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "workqueue"


def test_torch_openmp_threads_are_put_to_sleep_or_reported():
    # torch's libgomp reads OMP_WAIT_POLICY when it loads: stlsim's kernels, loaded
    # first, set PASSIVE for it; loaded after a multi-threaded torch, they warn.
    import os
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "STLSIM_OMP_GUARD")}
    code = "import os, stlsim; stlsim.get_num_threads(); print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(env, OMP_WAIT_POLICY="ACTIVE"))
    assert out.stdout.strip() == "ACTIVE"                          # the user's choice stands
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(env, STLSIM_OMP_GUARD="0"))
    assert out.stdout.strip() == "None"
    pytest.importorskip("torch")
    code = ("import warnings, torch\n"
            "torch.set_num_threads(2)\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import stlsim.kernels.cpu\n"
            "print(any('OMP_WAIT_POLICY' in str(w.message) for w in caught))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "True"


def test_stale_cache_policy_follows_numbas_cache_directory(tmp_path):
    # kernels._jit.prepare_cache stamps (and, after an edit of scalar.py, clears) the
    # directory Numba really caches in: NUMBA_CACHE_DIR when set, not only __pycache__.
    env = dict(__import__("os").environ, NUMBA_CACHE_DIR=str(tmp_path))
    subprocess.run([sys.executable, "-c", "import stlsim.kernels.cpu"], check=True, env=env)
    stamps = list(tmp_path.glob("*/cpu.deps.sha256"))
    assert len(stamps) == 1 and len(stamps[0].read_text()) == 64
    stale = stamps[0].parent / "cpu.forward_stale.nbi"
    stale.write_text("x")
    stamps[0].write_text("0" * 64)                   # as if scalar.py had changed
    subprocess.run([sys.executable, "-c", "import stlsim.kernels.cpu"], check=True, env=env)
    assert not stale.exists() and stamps[0].read_text() != "0" * 64
