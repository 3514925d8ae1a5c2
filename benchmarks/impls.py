"""One training step (forward + backward, gradients of every weight and threshold) of the
same network in each implementation, built from one problem (``workloads.make_problem``).

Every builder returns an object with ``step() -> loss`` and ``grads() -> dict`` (keys like
``stlsim.Network.params``: "0.weight", "0.theta", ...). The model everywhere: Dense layers
without bias, LIF neurons with decay factor tau (m_t = tau v_{t-1} + I_t), spike when
m_t - theta >= 0, hard reset v_t = (1 - s_t) m_t with the reset's gradient kept
(detach_reset = False), per-neuron learnable thresholds, atan surrogate (alpha = 2), loss
mean((rate - onehot)^2) with the rate averaged over T. Peer settings that give that model:

* PyTorch / torch.compile: written here from docs/model.md; the input currents of all T
  steps are one matmul (as in stlsim), the time loop is Python.
* snnTorch 1.0 ``Leaky(beta=tau, reset_mechanism="zero", reset_delay=False,
  learn_threshold=True, threshold=<tensor>, spike_grad=surrogate.atan(2))``: reset_delay=False
  resets in the same step (the default delays it one step); "zero" multiplies by
  (1 - spk) with spk's gradient kept. Its Heaviside is ``x > 0`` (H(0) = 0: a tie-only
  difference) and its spikes are float32 (cast back for float64 runs).
* SpikingJelly 2.0 ``LIFNode(tau=1 / (1 - tau), decay_input=False, v_reset=0.0,
  detach_reset=False, step_mode="m")``: its charge is v (1 - 1/tau_sj) + x. Its fused CPU
  operator takes only a scalar float threshold, so a learnable per-neuron threshold
  (assigned as an ``nn.Parameter`` of shape (N,)) needs its torch reference path, which
  a surrogate subclass selects (SpikingJelly only fuses its own classes).
"""
from __future__ import annotations

import math

import numpy as np

ALPHA = 2.0


# ------------------------------------------------------------------------- stlsim --
class StlsimStep:
    def __init__(self, problem, dtype, backend):
        import stlsim
        sizes = [w.shape[1] for w in problem["weights"]] + [problem["weights"][-1].shape[0]]
        layers = [stlsim.Dense(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        self.net = stlsim.Network(layers, neuron=stlsim.LIF(tau=problem["tau"]), surrogate="atan",
                                  population=1, dtype=dtype, backend=backend)
        for i, (w, theta) in enumerate(zip(problem["weights"], problem["thetas"])):
            self.net.params[f"{i}.weight"][...] = w
            self.net.params[f"{i}.theta"][...] = theta
        self.x, self.y = problem["x"].astype(dtype), problem["y"]
        self._grads = None

    def step(self):
        loss, self._grads = self.net.loss_and_grad(self.x, self.y)
        return loss

    def grads(self):
        return self._grads


# -------------------------------------------------------------------------- torch --
def _torch_dtype(dtype):
    import torch
    return torch.float32 if np.dtype(dtype) == np.float32 else torch.float64


class _TorchBase:
    def __init__(self, problem, dtype):
        import torch
        self.torch = torch
        tdtype = _torch_dtype(dtype)
        self.x = torch.from_numpy(problem["x"].astype(dtype))
        n_classes = problem["weights"][-1].shape[0]
        self.onehot = torch.nn.functional.one_hot(torch.from_numpy(problem["y"]), n_classes).to(tdtype)
        self.weights = [torch.nn.Parameter(torch.from_numpy(w.astype(dtype))) for w in problem["weights"]]
        self.thetas = [torch.nn.Parameter(torch.from_numpy(t.astype(dtype))) for t in problem["thetas"]]
        self.tau = problem["tau"]

    def parameters(self):
        return self.weights + self.thetas

    def step(self):
        for p in self.parameters():
            p.grad = None
        loss = self.loss(self.x, self.onehot)
        loss.backward()
        return float(loss.detach())

    def grads(self):
        out = {}
        for i, (w, t) in enumerate(zip(self.weights, self.thetas)):
            out[f"{i}.weight"] = w.grad.detach().numpy().copy()
            out[f"{i}.theta"] = t.grad.detach().numpy().copy()
        return out


def _spike_atan():
    import torch

    class SpikeATan(torch.autograd.Function):
        """s = H(x), H(0) = 1; backward: atan surrogate (alpha/2) / (1 + (pi alpha x / 2)^2)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            z = (math.pi / 2 * ALPHA) * x
            return grad * (ALPHA / 2) / (1 + z * z)

    return SpikeATan


_SPIKE = None


def torch_loss(x, onehot, weights, thetas, tau):
    """The spec's forward (L1)-(L4) and rate MSE loss in plain torch."""
    import torch
    global _SPIKE
    if _SPIKE is None:
        _SPIKE = _spike_atan()
    h = x
    for w, theta in zip(weights, thetas):
        current = h @ w.t()                                   # (L1), all T at once
        v = torch.zeros_like(current[0])
        spikes = []
        for t in range(current.shape[0]):
            m = tau * v + current[t]                          # (L2)
            s = _SPIKE.apply(m - theta)                       # (L3)
            v = (1 - s) * m                                   # (L4h)
            spikes.append(s)
        h = torch.stack(spikes)
    rates = h.mean(0)
    return ((rates - onehot) ** 2).mean()


class TorchStep(_TorchBase):
    def loss(self, x, onehot):
        return torch_loss(x, onehot, self.weights, self.thetas, self.tau)


class TorchCompileStep(_TorchBase):
    def __init__(self, problem, dtype):
        super().__init__(problem, dtype)
        self._compiled = self.torch.compile(torch_loss, dynamic=False)

    def loss(self, x, onehot):
        return self._compiled(x, onehot, self.weights, self.thetas, self.tau)


# ----------------------------------------------------------------------- snnTorch --
class SnntorchStep(_TorchBase):
    def __init__(self, problem, dtype):
        super().__init__(problem, dtype)
        import snntorch
        from snntorch import surrogate
        self.dtype = _torch_dtype(dtype)
        self.lifs = [snntorch.Leaky(beta=self.tau, threshold=t.detach().clone(), learn_threshold=True,
                                    spike_grad=surrogate.atan(alpha=ALPHA), reset_mechanism="zero",
                                    reset_delay=False) for t in self.thetas]
        self.thetas = [lif.threshold for lif in self.lifs]

    def loss(self, x, onehot):
        torch = self.torch
        h = x
        for w, lif in zip(self.weights, self.lifs):
            current = h @ w.t()
            mem = torch.zeros_like(current[0])
            spikes = []
            for t in range(current.shape[0]):
                spk, mem = lif(current[t], mem)
                spikes.append(spk.to(self.dtype))
            h = torch.stack(spikes)
        rates = h.mean(0)
        return ((rates - onehot) ** 2).mean()


# -------------------------------------------------------------------- SpikingJelly --
class SpikingjellyStep(_TorchBase):
    def __init__(self, problem, dtype):
        super().__init__(problem, dtype)
        from spikingjelly.activation_based import neuron, surrogate

        class ATan(surrogate.ATan):
            """SpikingJelly's ATan; a subclass so that SpikingJelly takes its torch path,
            the one that accepts a per-neuron tensor threshold."""

        self.nodes = []
        for i, theta in enumerate(self.thetas):
            node = neuron.LIFNode(tau=1.0 / (1.0 - self.tau), decay_input=False, v_threshold=1.0,
                                  v_reset=0.0, surrogate_function=ATan(alpha=ALPHA),
                                  detach_reset=False, step_mode="m")
            node.v_threshold = theta
            self.nodes.append(node)

    def loss(self, x, onehot):
        h = x
        for w, node in zip(self.weights, self.nodes):
            node.reset()
            h = node(h @ w.t())
        rates = h.mean(0)
        return ((rates - onehot) ** 2).mean()


# ----------------------------------------------------------------------- GEMM-only --
class GemmNumpy:
    """Just the products a step needs, in NumPy/BLAS: per layer I = h W^T (L1),
    dW = delta^T h (B4) and, above the first layer, e = delta W (B6)."""

    def __init__(self, problem, dtype):
        x = problem["x"].astype(dtype)
        rows = x.shape[0] * x.shape[1]
        self.ops = []
        h = x.reshape(rows, -1)
        for i, w in enumerate(problem["weights"]):
            w = w.astype(dtype)
            current = np.empty((rows, w.shape[0]), dtype)
            delta = np.ones((rows, w.shape[0]), dtype)
            grad_w = np.empty_like(w)
            self.ops.append((np.matmul, h, w.T, current))
            self.ops.append((np.matmul, delta.T, h, grad_w))
            if i > 0:
                self.ops.append((np.matmul, delta, w, np.empty_like(h)))
            h = (np.arange(rows * w.shape[0]).reshape(rows, w.shape[0]) % 7 == 0).astype(dtype)

    def step(self):
        for op, a, b, out in self.ops:
            op(a, b, out=out)
        return float("nan")

    def grads(self):
        return None


class GemmTorch(GemmNumpy):
    """The same products with torch (MKL/oneDNN here), for context."""

    def __init__(self, problem, dtype):
        import torch
        super().__init__(problem, dtype)
        self.ops = [(torch.matmul, torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out))
                    for _, a, b, out in self.ops]


BUILDERS = {
    "stlsim-numba": lambda p, d: StlsimStep(p, d, "numba"),
    "stlsim-numpy": lambda p, d: StlsimStep(p, d, "numpy"),
    "torch": TorchStep,
    "torch.compile": TorchCompileStep,
    "snntorch": SnntorchStep,
    "spikingjelly": SpikingjellyStep,
    "gemm-numpy": GemmNumpy,
    "gemm-torch": GemmTorch,
}
EAGER_PEERS = ("torch", "snntorch", "spikingjelly")
