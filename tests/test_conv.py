"""Conv2d, BatchNorm per time step, MaxPool2d, AvgPool2d, Flatten, Dropout.

Gradients are checked against an independent PyTorch autograd model written below
from ``docs/model.md`` (torch's conv2d, batch_norm, max_pool2d, avg_pool2d; the LIF
recursion (L2)-(L4) with a Heaviside / atan surrogate ``autograd.Function``), to
1e-10 in float64 in spiking mode, and against finite differences in smooth mode.
"""
import math

import numpy as np
import pytest

import stlsim
from stlsim.grad.check import compare, finite_difference_grads

torch = pytest.importorskip("torch")
F = torch.nn.functional

ATAN_ALPHA = 2.0
SHARING = ["neuron", "channel", "layer"]


# ------------------------------------------------------------ independent torch model --
class Spike(torch.autograd.Function):
    """H(x) (H(0) = 1), or atan's primitive in smooth mode; backward atan's sigma'(x)."""

    @staticmethod
    def forward(ctx, x, smooth):
        ctx.save_for_backward(x)
        if smooth:
            return torch.atan(math.pi * ATAN_ALPHA * x / 2) / math.pi + 0.5
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (ATAN_ALPHA / 2) / (1 + (math.pi * ATAN_ALPHA * x / 2) ** 2), None


def torch_lif(current, theta, tau, reset, smooth):
    v = torch.zeros_like(current[0])
    out = []
    for t in range(current.shape[0]):
        m = tau * v + current[t]                                          # (L2)
        s = Spike.apply(m - theta, smooth)                                # (L3)
        v = (1 - s) * m if reset == "hard" else m - s * theta            # (L4)
        out.append(s)
    return torch.stack(out)


def torch_theta(theta, sharing, ndim):
    if sharing == "channel" and ndim == 3:
        return theta.reshape(-1, 1, 1)
    return theta


def torch_run(spec, params, x, y, *, population, tau=0.5, reset="hard", smooth=False,
              training=True, running=None, masks=None, bn_joint=False):
    """spec: list of (kind, options) for each stlsim layer. Returns loss, grads, running stats."""
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    h = torch.tensor(x, dtype=torch.float64)
    T, B = h.shape[:2]
    stats = {}
    for i, (kind, opt) in enumerate(spec):
        if kind == "conv":
            z = F.conv2d(h.flatten(0, 1), tp[f"{i}.weight"], tp.get(f"{i}.bias"),
                         stride=opt.get("stride", 1), padding=opt.get("padding", 0))
            z = z.reshape((T, B) + z.shape[1:])
            if opt.get("batchnorm"):
                mean = torch.tensor(running[f"{i}.bn_running_mean"]).clone()
                var = torch.tensor(running[f"{i}.bn_running_var"]).clone()
                if bn_joint:    # the convention stlsim does NOT use: one statistic over all steps
                    z = F.batch_norm(z.flatten(0, 1), mean, var, tp[f"{i}.bn_weight"], tp[f"{i}.bn_bias"],
                                     training=training, momentum=0.1, eps=1e-5).reshape(z.shape)
                else:
                    z = torch.stack([F.batch_norm(z[t], mean, var, tp[f"{i}.bn_weight"], tp[f"{i}.bn_bias"],
                                                  training=training, momentum=0.1, eps=1e-5)
                                     for t in range(T)])                 # BN per time step
                stats[f"{i}.bn_running_mean"], stats[f"{i}.bn_running_var"] = mean.numpy(), var.numpy()
            theta = torch_theta(tp[f"{i}.theta"], opt.get("sharing", "neuron"), 3)
            h = torch_lif(z, theta, tau, reset, smooth)
        elif kind == "dense":
            z = h @ tp[f"{i}.weight"].T
            h = torch_lif(z, tp[f"{i}.theta"], tau, reset, smooth)
        elif kind in ("max", "avg"):
            pool = F.max_pool2d if kind == "max" else F.avg_pool2d
            z = pool(h.flatten(0, 1), opt["kernel"], opt.get("stride", opt["kernel"]))
            h = z.reshape((T, B) + z.shape[1:])
        elif kind == "flatten":
            h = h.flatten(2)
        elif kind == "dropout":
            h = h * torch.tensor(masks[i]) if masks is not None else h
        else:  # pragma: no cover
            raise ValueError(kind)
    C = h.shape[2] // population
    rates = h.reshape(T, B, C, population).mean(dim=(0, 3))
    onehot = F.one_hot(torch.tensor(y), C).to(torch.float64)
    loss = ((rates - onehot) ** 2).sum() / (B * C)
    grads = torch.autograd.grad(loss, list(tp.values()), allow_unused=True)
    grads = {k: (np.zeros(params[k].shape) if g is None else g.numpy()) for k, g in zip(tp, grads)}
    return float(loss.detach()), grads, stats


# ----------------------------------------------------------------- stlsim networks --
def build(spec, *, input_shape, population=2, theta=0.6, gain=2.0, seed=0, reset="hard",
          dtype=np.float64):
    layers = []
    for kind, opt in spec:
        if kind == "conv":
            layers.append(stlsim.Conv2d(opt["cin"], opt["cout"], opt["k"], stride=opt.get("stride", 1),
                                        padding=opt.get("padding", 0), bias=opt.get("bias", False),
                                        batchnorm=opt.get("batchnorm", False),
                                        threshold_sharing=opt.get("sharing", "neuron"), init_gain=gain))
        elif kind == "dense":
            layers.append(stlsim.Dense(opt["n_in"], opt["n_out"], init_gain=gain))
        elif kind == "max":
            layers.append(stlsim.MaxPool2d(opt["kernel"], opt.get("stride")))
        elif kind == "avg":
            layers.append(stlsim.AvgPool2d(opt["kernel"], opt.get("stride")))
        elif kind == "flatten":
            layers.append(stlsim.Flatten())
        elif kind == "dropout":
            layers.append(stlsim.Dropout(opt["p"]))
    neuron = stlsim.LIF(tau=0.5, theta_init=theta, reset=reset)
    return stlsim.Network(layers, neuron=neuron, population=population, seed=seed,
                          dtype=dtype, backend="numpy", input_shape=input_shape)


def tiny_spec(sharing, *, dropout=0.3):
    """Every new layer once: conv (pad, BN) - max - conv (stride 2, bias) - avg (overlapping)
    - flatten - dropout - dense."""
    return [("conv", dict(cin=2, cout=4, k=3, padding=1, batchnorm=True, sharing=sharing)),
            ("max", dict(kernel=2)),
            ("conv", dict(cin=4, cout=3, k=3, stride=2, padding=1, bias=True, sharing=sharing)),
            ("avg", dict(kernel=2, stride=1)),
            ("flatten", {}),
            ("dropout", dict(p=dropout)),
            ("dense", dict(n_in=3 * 1 * 1, n_out=3 * 2))]


def data(shape, T=4, B=5, seed=1, rate=0.5, n_classes=3):
    rng = np.random.default_rng(seed)
    x = (rng.random((T, B) + shape) < rate).astype(np.float64)
    return x, rng.integers(0, n_classes, B)


def replay_masks(net, spec, x_shape):
    """The dropout masks a training forward will draw: rng.random(shape) >= p, scaled by
    1/(1-p) (the documented convention), drawn from a copy of ``net.rng``."""
    rng = np.random.default_rng()
    rng.bit_generator.state = net.rng.bit_generator.state
    masks = {}
    for i, (kind, opt) in enumerate(spec):
        if kind == "dropout":
            shape = x_shape[:2] + net.layers[i].in_shape
            masks[i] = (rng.random(shape) >= opt["p"]) / (1 - opt["p"])
    return masks


def assert_close(ours, theirs, tol):
    table = compare(ours, theirs)
    worst = {k: v for k, v in table.items() if v["max_rel"] > tol}
    assert not worst, worst
    assert all(np.any(g != 0) for g in theirs.values()), "a gradient is identically zero"


# ------------------------------------------------------------------------ contract --
def test_public_contract():
    net = stlsim.Network(
        [stlsim.Conv2d(1, 16, kernel_size=5, padding=2), stlsim.MaxPool2d(2),
         stlsim.Conv2d(16, 16, kernel_size=3, padding=1, threshold_sharing="channel"),
         stlsim.AvgPool2d(2), stlsim.Flatten(), stlsim.Dense(16 * 7 * 7, 10 * 2)],
        neuron=stlsim.LIF(tau=0.5, theta_init=2.0), population=2, seed=0, dtype=np.float64)
    assert net.params["0.weight"].shape == (16, 1, 5, 5)
    assert net.params["0.theta"].shape == (16, 28, 28)
    assert net.params["2.theta"].shape == (16,)
    assert net.params["5.weight"].shape == (20, 16 * 7 * 7)
    assert net.input_shape == (1, 28, 28)
    assert net.spiking_layers == [0, 2, 5]
    x, y = data((1, 28, 28), T=2, B=3, n_classes=10)
    loss, grads = net.loss_and_grad(x, y)
    assert set(grads) == set(net.params)
    assert all(grads[k].shape == net.params[k].shape for k in grads)
    rec = net.forward(x)
    assert [s.shape for s in rec.spikes] == [(2, 3, 16, 28, 28), (2, 3, 16, 14, 14), (2, 3, 20)]


# --------------------------------------------------------- gradients vs torch autograd --
@pytest.mark.parametrize("sharing", SHARING)
def test_spiking_gradients_match_torch_training_mode(sharing):
    spec = tiny_spec(sharing)
    net = build(spec, input_shape=(2, 8, 8))
    x, y = data((2, 8, 8))
    masks = replay_masks(net, spec, x.shape)
    running = {k: v.copy() for k, v in net.buffers.items()}
    loss, grads, rec = net.loss_and_grad(x, y, training=True, return_record=True)
    assert min(rec.firing_rates) > 0.02 and max(rec.firing_rates) < 0.98
    t_loss, t_grads, t_stats = torch_run(spec, net.params, x, y, population=2, running=running,
                                         masks=masks)
    assert loss == pytest.approx(t_loss, abs=1e-12)
    assert_close(grads, t_grads, 1e-10)
    for key, value in t_stats.items():      # running estimates: T momentum updates per call
        np.testing.assert_allclose(net.buffers[key], value, rtol=1e-12, atol=1e-14)


def test_batchnorm_over_all_steps_would_differ():
    """Negative control: BN statistics pooled over all T steps give another gradient."""
    spec = tiny_spec("neuron", dropout=0.0)
    net = build(spec, input_shape=(2, 8, 8))
    x, y = data((2, 8, 8), seed=7)
    running = {k: v.copy() for k, v in net.buffers.items()}
    _, grads = net.loss_and_grad(x, y, smooth=True, training=True)
    _, joint, _ = torch_run(spec, net.params, x, y, population=2, smooth=True, running=running,
                            bn_joint=True)
    assert compare(grads, joint)["0.bn_weight"]["max_rel"] > 1e-3


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_spiking_gradients_match_torch_eval_mode(reset):
    spec = tiny_spec("neuron")
    net = build(spec, input_shape=(2, 8, 8), reset=reset)
    x, y = data((2, 8, 8), seed=3)
    net.loss_and_grad(x, y, training=True)   # move the running estimates off (0, 1)
    running = {k: v.copy() for k, v in net.buffers.items()}
    loss, grads = net.loss_and_grad(x, y, training=False)
    for key, value in running.items():       # evaluation leaves the estimates alone
        np.testing.assert_array_equal(net.buffers[key], value)
    t_loss, t_grads, _ = torch_run(spec, net.params, x, y, population=2, reset=reset,
                                   training=False, running=running)
    assert loss == pytest.approx(t_loss, abs=1e-12)
    assert_close(grads, t_grads, 1e-10)


def test_input_gradient_matches_torch():
    """dL/dx through the whole stack, including the first conv layer's (B6)."""
    spec = tiny_spec("channel", dropout=0.0)
    net = build(spec, input_shape=(2, 8, 8))
    x, y = data((2, 8, 8), seed=4)
    # A spiking layer in front makes the first conv's input gradient part of the result.
    front = stlsim.Conv2d(2, 2, 1, init_gain=3.0)
    net2 = stlsim.Network([front] + net.layers, neuron=net.neuron, population=2, seed=0,
                          backend="numpy", input_shape=(2, 8, 8))
    running = {k: v.copy() for k, v in net2.buffers.items()}
    loss, grads = net2.loss_and_grad(x, y, training=True)
    spec2 = [("conv", dict(cin=2, cout=2, k=1))] + spec
    _, t_grads, _ = torch_run(spec2, net2.params, x, y, population=2, running=running)
    assert_close(grads, t_grads, 1e-10)


def test_smooth_gradients_match_torch():
    spec = tiny_spec("layer")
    net = build(spec, input_shape=(2, 8, 8))
    x, y = data((2, 8, 8), seed=5)
    masks = replay_masks(net, spec, x.shape)
    running = {k: v.copy() for k, v in net.buffers.items()}
    loss, grads = net.loss_and_grad(x, y, smooth=True, training=True)
    t_loss, t_grads, _ = torch_run(spec, net.params, x, y, population=2, smooth=True,
                                   running=running, masks=masks)
    assert loss == pytest.approx(t_loss, abs=1e-12)
    assert_close(grads, t_grads, 1e-10)


# ------------------------------------------------------ smooth mode: finite differences --
@pytest.mark.parametrize("training", [True, False])
def test_smooth_gradients_match_finite_differences(training):
    spec = tiny_spec("channel")
    net = build(spec, input_shape=(2, 8, 8), theta=0.3, seed=2)
    x, y = data((2, 8, 8), T=3, B=4, seed=6)
    if not training:
        net.buffers["0.bn_running_mean"][:] = [0.1, -0.2, 0.3, 0.0]
        net.buffers["0.bn_running_var"][:] = [0.5, 1.5, 2.0, 1.0]
    state = net.rng.bit_generator.state
    _, grads = net.loss_and_grad(x, y, smooth=True, training=training)
    net.rng.bit_generator.state = state
    buffers = {k: v.copy() for k, v in net.buffers.items()}
    # Max pooling is piecewise (a window's argmax may switch): a narrow stencil, h = 1e-4.
    fd = finite_difference_grads(net, x, y, max_entries=12, seed=0, training=training, step=1e-4)
    for key, value in buffers.items():            # the check leaves no trace on the buffers
        np.testing.assert_array_equal(net.buffers[key], value)
    table = compare(grads, fd)
    assert max(v["max_rel"] for v in table.values()) <= 1e-6, table


# --------------------------------------------------------------------------- pooling --
def test_maxpool_gradient_goes_to_first_maximum_row_major():
    pool = stlsim.MaxPool2d(2)
    pool.build((1, 2, 4), 0)
    x = np.array([[1.0, 1.0, 0.0, 1.0],
                  [1.0, 1.0, 1.0, 1.0]]).reshape(1, 1, 1, 2, 4)
    out, cache = pool.forward(x, {}, stlsim.layers.Context())
    np.testing.assert_array_equal(out.reshape(-1), [1.0, 1.0])
    _, grad_x = pool.backward(np.array([3.0, 5.0]).reshape(1, 1, 1, 1, 2), cache, {}, True)
    expected = np.array([[3.0, 0.0, 0.0, 5.0],
                         [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(grad_x.reshape(2, 4), expected)
    # PyTorch's max_pool2d makes the same choice.
    tx = torch.tensor(x.reshape(1, 1, 2, 4), requires_grad=True)
    F.max_pool2d(tx, 2).backward(torch.tensor([[[[3.0, 5.0]]]], dtype=torch.float64))
    np.testing.assert_array_equal(tx.grad.numpy().reshape(2, 4), expected)


def test_pools_match_torch_with_ties_and_overlap():
    rng = np.random.default_rng(0)
    x = (rng.random((2, 3, 2, 7, 9)) < 0.5).astype(np.float64)   # spikes: ties everywhere
    g = rng.standard_normal
    for cls, fn, kernel, stride in [(stlsim.MaxPool2d, F.max_pool2d, 2, None),
                                    (stlsim.MaxPool2d, F.max_pool2d, 3, 1),
                                    (stlsim.MaxPool2d, F.max_pool2d, (2, 3), (1, 2)),
                                    (stlsim.AvgPool2d, F.avg_pool2d, 2, None),
                                    (stlsim.AvgPool2d, F.avg_pool2d, 3, 2)]:
        pool = cls(kernel, stride)
        pool.build((2, 7, 9), 0)
        out, cache = pool.forward(x, {}, stlsim.layers.Context())
        grad_out = g(out.shape)
        _, grad_x = pool.backward(grad_out, cache, {}, True)
        tx = torch.tensor(x.reshape(6, 2, 7, 9), requires_grad=True)
        t_out = fn(tx, kernel, stride if stride is not None else kernel)
        t_out.backward(torch.tensor(grad_out.reshape(t_out.shape)))
        np.testing.assert_allclose(out.reshape(t_out.shape), t_out.detach().numpy(), rtol=0, atol=1e-15)
        np.testing.assert_allclose(grad_x.reshape(tx.shape), tx.grad.numpy(), rtol=0, atol=1e-14)


def test_conv_layer_matches_torch_conv2d():
    rng = np.random.default_rng(0)
    for cin, cout, k, stride, padding, size in [(3, 4, 3, 1, 1, (9, 7)), (2, 5, (3, 2), (2, 1), (0, 2), (8, 8)),
                                                (1, 3, 5, 2, 2, (11, 10))]:
        conv = stlsim.Conv2d(cin, cout, k, stride, padding, bias=True, input_size=size)
        params = conv.init_params(rng, np.float64, 1.0)
        x = rng.standard_normal((2, 3, cin) + size)
        out, cache = conv.forward(x, params, stlsim.layers.Context())
        grad_out = rng.standard_normal(out.shape)
        grads, grad_x = conv.backward(grad_out, cache, params, True)
        tx = torch.tensor(x.reshape((6, cin) + size), requires_grad=True)
        tw = torch.tensor(params["weight"], requires_grad=True)
        tb = torch.tensor(params["bias"], requires_grad=True)
        t_out = F.conv2d(tx, tw, tb, stride=stride, padding=padding)
        assert out.shape[2:] == tuple(t_out.shape[1:]) == conv.out_shape
        t_out.backward(torch.tensor(grad_out.reshape(t_out.shape)))
        np.testing.assert_allclose(out.reshape(t_out.shape), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grads["weight"], tw.grad.numpy(), rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(grads["bias"], tb.grad.numpy(), rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(grad_x.reshape(tx.shape), tx.grad.numpy(), rtol=1e-11, atol=1e-11)


def test_conv_chunking_does_not_change_results(monkeypatch):
    from stlsim.layers import conv as conv_module
    rng = np.random.default_rng(1)
    conv = stlsim.Conv2d(3, 4, 3, padding=1, input_size=(6, 6))
    params = conv.init_params(rng, np.float64, 1.0)
    x = rng.standard_normal((3, 5, 3, 6, 6))
    g = rng.standard_normal((3, 5, 4, 6, 6))
    out, cache = conv.forward(x, params, stlsim.layers.Context())
    grads, grad_x = conv.backward(g, cache, params, True)
    monkeypatch.setattr(conv_module, "IM2COL_ELEMENTS", 500)        # one image per chunk
    out2, cache2 = conv.forward(x, params, stlsim.layers.Context())
    grads2, grad_x2 = conv.backward(g, cache2, params, True)
    np.testing.assert_allclose(out2, out, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(grads2["weight"], grads["weight"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x2, grad_x, rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------- dropout --
def dropout_net(seed=0, p=0.5):
    return stlsim.Network([stlsim.Dropout(p), stlsim.Dense(50, 4, init_gain=4.0)],
                          neuron=stlsim.LIF(theta_init=0.2), seed=seed, backend="numpy")


def test_dropout_mask_per_step_reproducible_and_absent_in_eval():
    layer = stlsim.Dropout(0.5)
    layer.build((50,), 0)
    x = np.ones((4, 3, 50))
    masks = []
    for _ in range(2):
        ctx = stlsim.layers.Context(training=True, rng=np.random.default_rng(7))
        out, _ = layer.forward(x, {}, ctx)
        masks.append(out)
    np.testing.assert_array_equal(masks[0], masks[1])              # same seed, same masks
    assert set(np.unique(masks[0])) == {0.0, 2.0}                   # inverted scaling 1/(1-p)
    assert not np.array_equal(masks[0][0], masks[0][1])             # a fresh mask every step
    assert abs(masks[0].mean() - 1.0) < 0.15
    out, cache = layer.forward(x, {}, stlsim.layers.Context(training=False))
    assert out is x and cache is None                               # identity in evaluation
    # Through a Network: the seed fixes the masks; training=False draws nothing.
    x, y = data((50,), B=3, n_classes=4)
    a, b = dropout_net(seed=3), dropout_net(seed=3)
    assert a.loss(x, y, training=True) == b.loss(x, y, training=True)
    state = a.rng.bit_generator.state
    a.loss(x, y, training=False)
    assert a.rng.bit_generator.state == state
    plain = stlsim.Network([stlsim.Dense(50, 4)], neuron=stlsim.LIF(theta_init=0.2), backend="numpy")
    plain.params["0.weight"][...] = a.params["1.weight"]
    assert a.loss(x, y, training=False) == plain.loss(x, y)
    assert a.loss(x, y, training=True) != plain.loss(x, y)


# -------------------------------------------------------------------- shape inference --
def test_shapes_are_inferred_or_given():
    def layers():
        return [stlsim.Conv2d(3, 8, 3), stlsim.MaxPool2d(2), stlsim.Flatten(),
                          stlsim.Dense(8 * 5 * 5, 4)]
    net = stlsim.Network(layers(), backend="numpy")
    assert net.input_shape == (3, 12, 12)                  # smallest square: 12 -> 10 -> 5
    net = stlsim.Network(layers(), input_shape=(3, 13, 12), backend="numpy")   # 13 -> 11 -> 5
    assert net.input_shape == (3, 13, 12) and net.layers[0].out_shape == (8, 11, 10)
    conv = stlsim.Conv2d(3, 8, 3, input_size=(13, 12))
    net = stlsim.Network([conv] + layers()[1:], backend="numpy")
    assert net.input_shape == (3, 13, 12)
    x = np.zeros((2, 1, 3, 12, 12))
    with pytest.raises(ValueError, match=r"`x` of `Network` must be a finite array of shape \(\?, \?, 3, 13, 12\)"):
        net.forward(x)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="`input_shape` of `Network` must be given .*not 8 channels of a square image"):
        stlsim.Network([stlsim.Conv2d(1, 8, 3), stlsim.Flatten(), stlsim.Dense(8 * 10, 4)])
    with pytest.raises(ValueError, match="`input_shape` of `Network` must be given .*no layer fixes"):
        stlsim.Network([stlsim.Conv2d(1, 8, 3), stlsim.MaxPool2d(2)])
    with pytest.raises(ValueError, match="no Conv2d before it"):
        stlsim.Network([stlsim.Flatten(), stlsim.Dense(16, 4)])
    with pytest.raises(ValueError, match=r"`layers\[3\]` of `Network` must be a layer taking inputs of shape \(128,\)"):
        stlsim.Network([stlsim.Conv2d(1, 8, 3), stlsim.MaxPool2d(2), stlsim.Flatten(),
                        stlsim.Dense(100, 4)], input_shape=(1, 10, 10))
    with pytest.raises(ValueError, match=r"`layers\[1\]` of `Network` must be a layer taking inputs of shape \(8, 8, 8\).*takes \(4, H, W\)"):
        stlsim.Network([stlsim.Conv2d(1, 8, 3), stlsim.Conv2d(4, 4, 3), stlsim.Flatten(),
                        stlsim.Dense(64, 4)], input_shape=(1, 10, 10))
    with pytest.raises(ValueError, match="kernel fits"):
        stlsim.Network([stlsim.Conv2d(1, 8, 5), stlsim.Flatten(), stlsim.Dense(8, 4)],
                       input_shape=(1, 3, 3))
    with pytest.raises(ValueError, match="`input_shape` of `Network` must be a non-empty tuple"):
        stlsim.Network([stlsim.Dense(3, 2)], input_shape=(0,))
    with pytest.raises(ValueError, match="`threshold_sharing` of `Conv2d` must be one of"):
        stlsim.Conv2d(1, 2, 3, threshold_sharing="pixel")
    with pytest.raises(ValueError, match="`p` of `Dropout`"):
        stlsim.Dropout(1.0)


def test_float32_and_numba_backend():
    spec = tiny_spec("neuron")
    net = build(spec, input_shape=(2, 8, 8))
    x, y = data((2, 8, 8))
    state = net.rng.bit_generator.state
    _, ref = net.loss_and_grad(x, y, training=True)
    net32 = build(spec, input_shape=(2, 8, 8), dtype=np.float32)
    _, g32 = net32.loss_and_grad(x, y, training=True)
    assert all(g.dtype == np.float32 for g in g32.values())
    assert all(b.dtype == np.float32 for b in net32.buffers.values())
    try:
        from stlsim.engines import get_backend
        get_backend("numba")
    except Exception:                                      # numba backend not available
        return
    net.rng.bit_generator.state = state
    _, fast = net.loss_and_grad(x, y, training=True, backend="numba")
    assert_close(fast, ref, 1e-12)


# ---------------------------------------------------------------- architecture presets --
def test_presets():
    from stlsim import architectures
    assert set(architectures.names()) >= {"stl-mnist", "conv-small", "cifar10-8layer", "mlp"}
    net = architectures.network("stl-mnist", input_shape=(1, 28, 28), n_classes=10, population=10)
    assert net.params["0.theta"].shape == (128, 28, 28)          # 100,352 thresholds
    assert net.params["0.weight"].shape == (128, 1, 5, 5)
    assert [type(l).__name__ for l in net.layers] == [
        "Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d", "Flatten", "Dropout", "Dense", "Dropout", "Dense"]
    assert net.layers[0].batchnorm and net.layers[6].out_features == 2048
    assert net.layers[-1].out_features == 100 and net.dtype == np.float32
    # (H, W) images get a Reshape; the layer list alone fixes the input shape.
    layers = architectures.build("conv-small", input_shape=(28, 28), n_classes=10, population=2)
    net = stlsim.Network(layers, population=2, backend="numpy")
    assert net.input_shape == (28, 28)
    x, y = data((28, 28), T=2, B=2, n_classes=10)
    loss, grads = net.loss_and_grad(x, y, training=True)
    assert np.isfinite(loss) and set(grads) == set(net.params)
    cifar = architectures.build("cifar10-8layer", input_shape=(3, 32, 32), n_classes=10)
    assert sum(l.has_neurons for l in cifar) == 8
    assert architectures.ARCHITECTURES["cifar10-8layer"].time_steps == 8
    mlp = stlsim.Network(architectures.build("mlp", input_shape=(28, 28), n_classes=10, hidden=64))
    assert mlp.params["1.weight"].shape == (64, 784)
    with pytest.raises(TypeError, match="`options` of `build\\('mlp'\\)`"):
        architectures.build("mlp", input_shape=(64,), n_classes=10, batchnorm=True)
    with pytest.raises(ValueError, match="`name` of `build` must be one of"):
        architectures.build("resnet", input_shape=(64,), n_classes=10)
    with pytest.raises(ValueError, match="`input_shape` of `build\\('conv-small'\\)`"):
        architectures.build("conv-small", input_shape=(784,), n_classes=10)
