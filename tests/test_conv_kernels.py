"""The compiled conv kernels (``stlsim.kernels.conv_cpu``) against the NumPy layer code.

Budgets: im2col, col2im, max pooling and the convolution's GEMMs bitwise equal to the
reference (same operands, same order of additions); BatchNorm within 1e-12 (float64) of
the largest reference entry, 1e-5 in float32 (its sums run in float64 in another order).
The fast path must run when the backend is "numba" (``conv_cpu.CALLS``) and not with
"numpy".
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import stlsim  # noqa: E402
from stlsim.layers import Context  # noqa: E402
from stlsim.layers import batchnorm as bn  # noqa: E402
from stlsim.layers import conv as conv_module  # noqa: E402
from stlsim.kernels import conv_cpu  # noqa: E402

TOL = {np.float64: 1e-12, np.float32: 1e-5}

# (C_in, C_out, H, W, kernel, stride, padding): 1 channel, overlapping stride-2 windows,
# a non-square kernel and image, padding wider than a stride.
CONVS = [(1, 3, 7, 7, 3, 1, 1), (3, 4, 8, 6, (3, 2), 2, 1), (5, 2, 6, 9, 5, (1, 2), 2),
         (20, 6, 5, 5, 3, 1, 0)]


def assert_close(got, ref, tol, what="", floor=1e-30):
    scale = max(float(np.max(np.abs(ref))), floor)
    err = float(np.max(np.abs(np.asarray(got, np.float64) - ref)))
    assert err <= tol * scale, f"{what}: max abs err {err:.3e}, max |ref| {scale:.3e}"


def pairs(kernel, stride, padding):
    as_pair = lambda v: tuple(v) if isinstance(v, tuple) else (v, v)    # noqa: E731
    return as_pair(kernel), as_pair(stride), as_pair(padding)


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_im2col_and_col2im_bitwise_equal_the_reference(case, dtype):
    c_in, _, height, width, kernel, stride, padding = case
    kernel, stride, padding = pairs(kernel, stride, padding)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, c_in, height, width)).astype(dtype)
    out_hw = tuple(conv_module.conv_output_size(n, k, s, p)
                   for n, k, s, p in zip((height, width), kernel, stride, padding))
    x_pad = np.zeros((5, height + 2 * padding[0], width + 2 * padding[1], c_in), dtype)
    x_pad[:, padding[0]:padding[0] + height, padding[1]:padding[1] + width] = x.transpose(0, 2, 3, 1)
    ref = conv_module.im2col(x_pad[1:4], kernel, stride, out_hw)
    cols = np.full(ref.shape, np.nan, dtype)
    conv_cpu.im2col(x, 1, kernel, stride, padding, out_hw, cols)        # images 1..3
    np.testing.assert_array_equal(cols, ref)

    grad_cols = rng.standard_normal(ref.shape).astype(dtype)
    grad_pad = np.zeros_like(x_pad)
    conv_module.col2im_add(grad_pad[1:4], grad_cols, kernel, stride, out_hw)
    grad_ref = grad_pad[:, padding[0]:padding[0] + height, padding[1]:padding[1] + width].transpose(0, 3, 1, 2)
    grad_x = np.zeros_like(x)
    conv_cpu.col2im_add(grad_cols, 1, kernel, stride, padding, out_hw, grad_x)
    np.testing.assert_array_equal(grad_x, grad_ref)


def layer_pair(layer_factory, x, grad, params_fn, training=True):
    """(forward, backward) of the NumPy code and of the compiled path on the same inputs."""
    out = {}
    for backend in ("numpy", "numba"):
        layer = layer_factory()
        params = params_fn(layer)
        y, cache = layer.forward(x, params, Context(training=training, backend=backend))
        grads, grad_x = layer.backward(grad, cache, params, need_input_grad=True)
        out[backend] = (y, grads, grad_x, params)
    return out["numpy"], out["numba"]


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_layer_compiled_path_matches_numpy(case, batchnorm, training, dtype, monkeypatch):
    c_in, c_out, height, width, kernel, stride, padding = case
    layer = lambda: stlsim.Conv2d(c_in, c_out, kernel, stride, padding, bias=True,    # noqa: E731
                                  batchnorm=batchnorm, input_size=(height, width))
    rng = np.random.default_rng(1)
    T, B = 3, 4
    x = (rng.random((T, B, c_in, height, width)) < 0.4).astype(dtype)
    grad = rng.standard_normal((T, B) + layer().out_shape).astype(dtype)

    def params_fn(conv):
        params = conv.init_params(np.random.default_rng(2), dtype, 1.0)
        params.update(conv.init_buffers(dtype))
        if batchnorm:
            params["bn_weight"][:] = np.linspace(0.5, 1.5, c_out)
            params["bn_bias"][:] = np.linspace(-0.2, 0.3, c_out)
            params["bn_running_mean"][:] = 0.1
            params["bn_running_var"][:] = 1.7
        return params

    monkeypatch.setattr(conv_module, "IM2COL_ELEMENTS", 1500)     # several chunks
    before = conv_cpu.CALLS.copy()
    (y0, g0, gx0, p0), (y1, g1, gx1, p1) = layer_pair(layer, x, grad, params_fn, training)
    assert conv_cpu.CALLS["conv:im2col"] > before["conv:im2col"] + 2          # the fast path ran
    assert conv_cpu.CALLS["conv:col2im"] > before["conv:col2im"]
    tol = TOL[dtype]
    if batchnorm:
        assert_close(y1, y0, tol, "currents")
        assert conv_cpu.CALLS["conv:bn_apply"] == before["conv:bn_apply"] + 1
    else:
        np.testing.assert_array_equal(y1, y0)          # same GEMMs on the same operands
    assert set(g1) == set(g0)
    for key in g0:
        assert g1[key].dtype == dtype and g1[key].shape == g0[key].shape
        # the conv bias under BatchNorm in training: zero up to rounding, on delta's scale
        floor = float(np.max(np.abs(grad))) if key == "bias" and batchnorm and training else 1e-30
        assert_close(g1[key], g0[key], tol, key, floor)
    assert gx1.dtype == dtype
    assert_close(gx1, gx0, tol, "grad_x")
    for key in ("bn_running_mean", "bn_running_var") if batchnorm else ():
        assert_close(p1[key], p0[key], tol, key)


@pytest.mark.parametrize("kernel,stride", [(2, None), (3, 2), ((2, 3), (1, 2)), (3, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_maxpool_compiled_path_bitwise_equals_numpy_with_ties(kernel, stride, dtype):
    rng = np.random.default_rng(3)
    x = (rng.random((2, 3, 4, 9, 8)) < 0.3).astype(dtype)          # spikes: ties everywhere
    x[0, 0, 0] = rng.standard_normal((9, 8))                         # and one plane without ties

    def layer():
        pool = stlsim.MaxPool2d(kernel, stride)
        pool.build((4, 9, 8), 0)
        return pool
    grad = rng.standard_normal((2, 3) + layer().out_shape).astype(dtype)
    before = conv_cpu.CALLS.copy()
    (y0, _, gx0, _), (y1, _, gx1, _) = layer_pair(layer, x, grad, lambda pool: {})
    assert conv_cpu.CALLS["conv:maxpool_backward"] == before["conv:maxpool_backward"] + 1
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(gx1, gx0)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_channels_last_matches_reference(training):
    rng = np.random.default_rng(4)
    T, B, C, P = 3, 5, 4, 6
    z = rng.standard_normal((T, B, P, C)) * 2 + 0.5
    shift = rng.standard_normal(C)
    weight, bias = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    ref_stats = [rng.standard_normal(C) * 0.1, rng.uniform(0.5, 2, C)]
    our_stats = [s.copy() for s in ref_stats]
    z_nchw = np.ascontiguousarray(z.transpose(0, 1, 3, 2)) + shift.reshape(-1, 1)
    ref, ref_cache = bn.batchnorm_forward(z_nchw, weight, bias, *ref_stats, training=training,
                                          momentum=0.1, eps=1e-5)
    ours, cache = bn.batchnorm_forward_channels_last(z, shift, weight, bias, *our_stats,
                                                     training=training, momentum=0.1, eps=1e-5)
    assert_close(ours, ref, 1e-12, "currents")
    for a, b in zip(our_stats, ref_stats):
        assert_close(a, b, 1e-12, "running estimates")
    grad = rng.standard_normal(ref.shape)
    ref_grads = bn.batchnorm_backward(grad, ref_cache, weight)
    grad_z, grad_weight, grad_bias = bn.batchnorm_backward_channels_last(grad, cache, weight)
    assert_close(grad_z.transpose(0, 1, 3, 2), ref_grads[0], 1e-12, "grad_z")
    assert_close(grad_weight, ref_grads[1], 1e-12, "grad_weight")
    assert_close(grad_bias, ref_grads[2], 1e-12, "grad_bias")
    # the compiled cache is also the reference backward's
    again = bn.batchnorm_backward(grad, cache, weight)
    assert_close(again[0], ref_grads[0], 1e-12, "reference backward on the compiled cache")


def test_network_numba_runs_the_conv_kernels_and_matches_numpy():
    from stlsim import architectures
    for dtype in (np.float64, np.float32):
        net = architectures.network("conv-small", input_shape=(1, 12, 12), n_classes=3, population=2,
                                    dtype=dtype, backend="numpy", seed=0)
        for key in net.params:
            if key.endswith(".theta"):
                net.params[key][:] = 0.05                           # spikes in every layer
        rng = np.random.default_rng(5)
        x = (rng.random((4, 6, 1, 12, 12)) < 0.5).astype(dtype)
        y = rng.integers(0, 3, 6)
        state = net.rng.bit_generator.state
        buffers = {k: v.copy() for k, v in net.buffers.items()}
        before = conv_cpu.CALLS.copy()
        loss0, ref, rec0 = net.loss_and_grad(x, y, training=True, backend="numpy", return_record=True)
        assert conv_cpu.CALLS == before                               # numpy: the reference only
        ref_buffers = {k: v.copy() for k, v in net.buffers.items()}
        net.rng.bit_generator.state = state
        for key, value in buffers.items():
            net.buffers[key][...] = value
        loss1, fast, rec1 = net.loss_and_grad(x, y, training=True, backend="numba", return_record=True)
        ran = {k: conv_cpu.CALLS[k] - before[k] for k in conv_cpu.CALLS if k.startswith("conv:")}
        assert ran["conv:im2col"] >= 4 and ran["conv:col2im"] >= 1 and ran["conv:bn_apply"] == 2
        assert ran["conv:maxpool_forward"] == 2 and ran["conv:maxpool_backward"] == 2
        assert all(float(np.mean(s)) > 0 for s in rec0.spikes)
        tol = TOL[dtype]
        if dtype == np.float64:                        # float32: a spike may flip at 1e-7
            for s0, s1 in zip(rec0.spikes, rec1.spikes):
                np.testing.assert_array_equal(s1, s0)
            assert abs(loss1 - loss0) <= 1e-12
        for key in ref:
            assert fast[key].dtype == dtype
            assert_close(fast[key], ref[key], tol if dtype == np.float64 else 1e-3, key)
        for key in ref_buffers:
            assert_close(net.buffers[key], ref_buffers[key], tol, key)


def test_conv_speed_benchmark_names_a_loaded_run(tmp_path, monkeypatch):
    """``benchmarks/conv_speed.py`` writes ``conv_speed_loaded.json`` (never the quiet
    file) when the load average exceeded ``LOADED`` at the start, with both load averages
    and the ratios."""
    import json
    from benchmarks import conv_speed
    monkeypatch.setattr(conv_speed, "RESULTS", str(tmp_path))
    loads = iter([(conv_speed.LOADED + 1, 1.0, 1.0), (1.0, 1.0, 1.0)])      # loaded at the start
    monkeypatch.setattr(conv_speed.os, "getloadavg", lambda: next(loads))
    conv_speed.main(["--arch", "conv-small", "--batch", "2", "--time-steps", "1", "--repeats", "1",
                     "--no-torch"])
    assert not (tmp_path / "conv_speed.json").exists()
    data = json.loads((tmp_path / "conv_speed_loaded.json").read_text())
    assert data["provenance"]["load_average_start"][0] == conv_speed.LOADED + 1
    assert data["provenance"]["load_average_end"][0] == 1.0
    rows = {row["runner"]: row for row in data["results"]}
    assert set(rows) >= {"stlsim-numpy", "stlsim-numba", "gemm-only"}
    assert rows["stlsim-numba"]["ratios"]["vs gemm-only"] == pytest.approx(
        rows["stlsim-numba"]["seconds_per_batch"] / rows["gemm-only"]["seconds_per_batch"])
    assert "vs gemm-only" in rows["stlsim-numba"]["best_ratios"]


@pytest.mark.parametrize("c_out,size", [(1, 6), (3, 1)])       # one channel; one output pixel
def test_compiled_conv_output_does_not_alias_scratch(c_out, size):
    """The currents of one call survive the next call (the GEMM output is workspace
    scratch; a transpose that is already contiguous must still be copied)."""
    conv = stlsim.Conv2d(2, c_out, 3, input_size=(size + 2, size + 2))        # output size x size
    params = conv.init_params(np.random.default_rng(0), np.float64, 1.0)
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((2, 2, 3) + conv.in_shape)
    ctx = Context(backend="numba")
    out1, _ = conv.forward(x1, params, ctx)
    kept = out1.copy()
    conv.forward(x2, params, ctx)
    np.testing.assert_array_equal(out1, kept)


def test_conv_speed_profile_times_the_pieces_and_restores_them(capsys):
    """``conv_speed.py --profile``: a row per conv kernel, layer, LIF kernel and GEMM, and
    the wrapped functions are the originals again afterwards."""
    from benchmarks import conv_speed
    from stlsim.engines import numba_backend
    from stlsim.layers import Conv2d
    originals = (conv_cpu.im2col, Conv2d.forward, numba_backend.BACKEND)
    conv_speed.main(["--profile", "--arch", "conv-small", "--batch", "2", "--time-steps", "2",
                     "--repeats", "1"])
    out = capsys.readouterr().out
    for row in ("whole step", "kernel: im2col", "kernel: bn_apply", "Conv2d.backward", "LIF forward",
                "gemm-only (one call)", "gemm 0: (3136, 25) @ (25, 16)"):
        assert row in out, row
    assert (conv_cpu.im2col, Conv2d.forward, numba_backend.BACKEND) == originals
