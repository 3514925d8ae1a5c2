"""Independent PyTorch autograd reference for the STL-SNN model.

Written from the equations of ``docs/model.md`` only (never from stlsim's code): the forward pass
(L1)-(L4), the surrogate gradients and the rate readout are expressed with torch
operations and PyTorch's autograd produces the gradient. The BPTT equations
(B1)-(B6) are therefore *not* coded here; agreement with stlsim's hand-written
backward is the evidence that both are right.

Parameters come as a NumPy dict with stlsim's keys (``"0.weight"`` of shape
``(N_out, N_in)``, ``"0.theta"`` of shape ``(N_out,)``, optional ``"0.bias"``);
results are returned as NumPy float64.
"""
from __future__ import annotations

import math

import numpy as np
import torch

SURROGATE_DEFAULTS = {"atan": 2.0, "sigmoid": 4.0, "rectangular": 1.0, "superspike": 10.0}


def surrogate_primitive(name: str, param: float, x: torch.Tensor) -> torch.Tensor:
    """Smooth primitive P(x) whose derivative is the surrogate sigma'(x); P(0) = 1/2."""
    if name == "atan":
        alpha = param
        return torch.atan(math.pi * alpha * x / 2) / math.pi + 0.5
    if name == "sigmoid":
        alpha = param
        return torch.sigmoid(alpha * x)
    if name == "rectangular":
        width = param
        return torch.clamp(x / width + 0.5, 0.0, 1.0)
    if name == "superspike":
        beta = param
        # integral of 1/(1+beta|x|)^2 from 0 is sign(x)(1 - 1/(1+beta|x|))/beta = x/(1+beta|x|)
        return 0.5 + x / (1 + beta * torch.abs(x))
    raise ValueError(f"unknown surrogate {name!r}")


def surrogate_derivative(name: str, param: float, x: torch.Tensor) -> torch.Tensor:
    """sigma'(x) exactly as tabulated in the spec."""
    if name == "atan":
        alpha = param
        return (alpha / 2) / (1 + (math.pi * alpha * x / 2) ** 2)
    if name == "sigmoid":
        alpha = param
        g = torch.sigmoid(alpha * x)
        return alpha * g * (1 - g)
    if name == "rectangular":
        width = param
        return (torch.abs(x) < width / 2).to(x.dtype) / width
    if name == "superspike":
        beta = param
        return 1.0 / (1 + beta * torch.abs(x)) ** 2
    raise ValueError(f"unknown surrogate {name!r}")


class SpikeFunction(torch.autograd.Function):
    """s = H(x) (H(0) = 1) or, in smooth mode, s = P(x); backward always sigma'(x)."""

    @staticmethod
    def forward(ctx, x, name, param, smooth):
        ctx.save_for_backward(x)
        ctx.name, ctx.param = name, param
        if smooth:
            return surrogate_primitive(name, param, x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_s):
        (x,) = ctx.saved_tensors
        return grad_s * surrogate_derivative(ctx.name, ctx.param, x), None, None, None


def layer_indices(params: dict) -> list[int]:
    return sorted(int(k.split(".")[0]) for k in params if k.endswith(".weight"))


def forward(tparams: dict, x: torch.Tensor, *, tau: float, reset: str, detach_reset: bool,
            surrogate: str, surrogate_param: float | None, population: int, smooth: bool):
    """Torch forward. Returns (spikes list, membranes list, rates (B, C)) as tensors."""
    if surrogate_param is None:
        surrogate_param = SURROGATE_DEFAULTS[surrogate]
    if reset not in ("hard", "soft"):
        raise ValueError(reset)
    T = x.shape[0]
    layer_input = x
    spikes_all, membranes_all = [], []
    for l in layer_indices(tparams):
        weight, theta = tparams[f"{l}.weight"], tparams[f"{l}.theta"]
        bias = tparams.get(f"{l}.bias")
        current = layer_input @ weight.T                         # (L1)
        if bias is not None:
            current = current + bias
        v = torch.zeros_like(current[0])
        spikes, membranes = [], []
        for t in range(T):
            m = tau * v + current[t]                             # (L2)
            s = SpikeFunction.apply(m - theta, surrogate, surrogate_param, smooth)  # (L3)
            s_reset = s.detach() if detach_reset else s
            if reset == "hard":
                v = (1 - s_reset) * m                            # (L4h)
            else:
                v = m - s_reset * theta                          # (L4s)
            spikes.append(s)
            membranes.append(m)
        layer_input = torch.stack(spikes)
        spikes_all.append(layer_input)
        membranes_all.append(torch.stack(membranes))
    out = spikes_all[-1]
    B, n_out = out.shape[1], out.shape[2]
    if n_out % population:
        raise ValueError("output size not a multiple of population")
    rates = out.reshape(T, B, n_out // population, population).mean(dim=(0, 3))
    return spikes_all, membranes_all, rates


def loss_fn(rates: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    B, C = rates.shape
    if loss == "mse_rate":
        onehot = torch.nn.functional.one_hot(y, C).to(rates.dtype)
        return ((rates - onehot) ** 2).sum() / (B * C)
    if loss == "ce_rate":
        return -torch.log_softmax(rates, dim=1)[torch.arange(B), y].mean()
    raise ValueError(f"unknown loss {loss!r}")


def run(params: dict, x: np.ndarray, y: np.ndarray, *, tau: float = 0.5, reset: str = "hard",
        detach_reset: bool = False, surrogate: str = "atan", surrogate_param: float | None = None,
        population: int = 1, loss: str = "mse_rate", smooth: bool = False,
        dtype=np.float64) -> dict:
    """Forward + autograd backward. Everything returned as NumPy float64.

    Keys: loss, grads (dict like params), spikes, membranes (lists of (T, B, N)), rates.
    """
    tdtype = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[np.dtype(dtype)]
    tparams = {k: torch.tensor(np.asarray(v), dtype=tdtype, requires_grad=True)
               for k, v in params.items()}
    tx = torch.tensor(np.asarray(x), dtype=tdtype)
    ty = torch.tensor(np.asarray(y), dtype=torch.long)
    spikes, membranes, rates = forward(
        tparams, tx, tau=tau, reset=reset, detach_reset=detach_reset, surrogate=surrogate,
        surrogate_param=surrogate_param, population=population, smooth=smooth)
    value = loss_fn(rates, ty, loss)
    grads = torch.autograd.grad(value, list(tparams.values()), allow_unused=True)
    def as64(a):
        return a.detach().numpy().astype(np.float64)
    return {
        "loss": float(value.detach()),
        "grads": {k: (as64(g) if g is not None else np.zeros(np.shape(params[k])))
                  for k, g in zip(tparams, grads)},
        "spikes": [as64(s) for s in spikes],
        "membranes": [as64(m) for m in membranes],
        "rates": as64(rates),
    }


def loss_and_grad(params, x, y, **kw):
    out = run(params, x, y, **kw)
    return out["loss"], out["grads"]
