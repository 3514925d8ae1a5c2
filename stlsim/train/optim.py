"""Optimizers and learning-rate schedules, in plain NumPy.

Both follow PyTorch's update rules so results can be compared with the paper's
reference code: ``Adam`` (``torch.optim.Adam``) and ``SGD`` with heavy-ball momentum
(``torch.optim.SGD``). Parameters are updated in place; each parameter may have its own
learning rate (e.g. thresholds apart from weights).

Weight decay is an explicit choice, ``weight_decay_mode``:

* ``"coupled"`` (the default, the paper's code and ``torch.optim.Adam``): L2 added to the
  gradient before the optimizer sees it, ``g <- g + wd * p``. Under Adam the decay term is
  then normalised like the gradient: where the loss gradient is near zero, a decay of 1e-6
  still moves a parameter by a full step of about ``lr`` (SL's weights shrink, STL's
  thresholds fall), so a comparison of modes may measure the decay, not the learning;
* ``"decoupled"`` (AdamW, Loshchilov & Hutter; ``torch.optim.AdamW``): the parameter shrinks
  outside the adaptive step, ``p <- p - lr_p * wd * p`` with the parameter's own (scheduled)
  learning rate, then the optimizer steps on the plain gradient;
* ``"none"``: no decay, whatever ``weight_decay`` says.

``decay_names``: the parameters that are decayed (default: all the optimizer updates);
``decayed_names`` leaves out thresholds and trained decays when asked.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .._checks import check_real, fail

__all__ = ["Adam", "SGD", "ExponentialDecay", "make_optimizer", "decayed_names", "WEIGHT_DECAY_MODES"]

WEIGHT_DECAY_MODES = ("coupled", "decoupled", "none")


class _Optimizer(ABC):
    def __init__(self, params: dict, names, lr, lr_per_param=None, weight_decay=0.0, weight_decay_mode="coupled",
                 decay_names=None):
        self.params = params
        self.names = list(names)
        for name in self.names:
            if name not in params:
                raise fail("names", "names of entries in params", repr(name), type(self).__name__)
        self.base_lr = check_real(lr, "lr", low=0.0, owner=type(self).__name__)
        self.lr_scale = {name: 1.0 for name in self.names}
        for name, value in (lr_per_param or {}).items():
            if name in self.lr_scale:
                self.lr_scale[name] = check_real(value, f"lr_per_param[{name!r}]", low=0.0,
                                                 owner=type(self).__name__) / self.base_lr if self.base_lr else 0.0
        self.lr = self.base_lr
        self.weight_decay = check_real(weight_decay, "weight_decay", low=0.0, owner=type(self).__name__)
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise fail("weight_decay_mode", "one of " + ", ".join(repr(m) for m in WEIGHT_DECAY_MODES),
                       repr(weight_decay_mode), type(self).__name__)
        self.weight_decay_mode = weight_decay_mode
        if decay_names is None:
            decay_names = self.names
        decay_names = set(decay_names)
        for name in sorted(decay_names - set(self.names)):
            raise fail("decay_names", "names the optimizer updates", repr(name), type(self).__name__)
        self.decay_names = decay_names
        self.step_count = 0

    def _coupled(self, name, p, g):
        """The gradient the optimizer sees: ``g + wd * p`` under coupled L2 (torch semantics), else ``g``."""
        if self.weight_decay and self.weight_decay_mode == "coupled" and name in self.decay_names:
            return g + self.weight_decay * p
        return g

    def _decoupled(self, name, p):
        """AdamW's decay, outside the adaptive step: ``p -= lr_p * wd * p``."""
        if self.weight_decay and self.weight_decay_mode == "decoupled" and name in self.decay_names:
            p -= (self.lr * self.lr_scale[name] * self.weight_decay * p).astype(p.dtype, copy=False)

    @abstractmethod
    def step(self, grads: dict):
        """Update the parameters in place from ``grads``."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Arrays and scalars that resume the optimizer exactly."""

    @abstractmethod
    def load_state_dict(self, state: dict):
        """Restore what ``state_dict`` returned."""


class Adam(_Optimizer):
    """Adam (Kingma & Ba): with coupled L2 weight decay as ``torch.optim.Adam``, or decoupled
    as ``torch.optim.AdamW`` (``weight_decay_mode``, module docstring).

    Defaults are the paper's: lr 1e-3, betas (0.9, 0.999), eps 1e-8, coupled weight decay 1e-6.
    """

    def __init__(self, params, names, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-6,
                 lr_per_param=None, weight_decay_mode="coupled", decay_names=None):
        super().__init__(params, names, lr, lr_per_param, weight_decay, weight_decay_mode, decay_names)
        self.beta1 = check_real(betas[0], "betas[0]", low=0.0, high=1.0, high_open=True, owner="Adam")
        self.beta2 = check_real(betas[1], "betas[1]", low=0.0, high=1.0, high_open=True, owner="Adam")
        self.eps = check_real(eps, "eps", low=0.0, owner="Adam")
        self.m = {n: np.zeros_like(params[n]) for n in self.names}
        self.v = {n: np.zeros_like(params[n]) for n in self.names}

    def step(self, grads: dict):
        self.step_count += 1
        k = self.step_count
        bias1 = 1.0 - self.beta1 ** k
        bias2 = 1.0 - self.beta2 ** k
        for name in self.names:
            p, g = self.params[name], grads[name]
            g = self._coupled(name, p, g)
            self._decoupled(name, p)
            m, v = self.m[name], self.v[name]
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            step_size = self.lr * self.lr_scale[name] / bias1
            denom = np.sqrt(v) / np.sqrt(bias2) + self.eps
            p -= (step_size * (m / denom)).astype(p.dtype, copy=False)

    def state_dict(self):
        state = {"step_count": self.step_count, "lr": self.lr}
        for name in self.names:
            state[f"m/{name}"] = self.m[name]
            state[f"v/{name}"] = self.v[name]
        return state

    def load_state_dict(self, state):
        self.step_count = int(state["step_count"])
        self.lr = float(state["lr"])
        for name in self.names:
            self.m[name][...] = state[f"m/{name}"]
            self.v[name][...] = state[f"v/{name}"]


class SGD(_Optimizer):
    """SGD with momentum, as ``torch.optim.SGD``: coupled L2 weight decay (torch's), or decoupled
    (``p -= lr_p * wd * p`` beside the momentum step; ``weight_decay_mode``, module docstring)."""

    def __init__(self, params, names, lr=1e-2, momentum=0.9, weight_decay=0.0, lr_per_param=None,
                 weight_decay_mode="coupled", decay_names=None):
        super().__init__(params, names, lr, lr_per_param, weight_decay, weight_decay_mode, decay_names)
        self.momentum = check_real(momentum, "momentum", low=0.0, high=1.0, owner="SGD")
        self.buf = {n: None for n in self.names}

    def step(self, grads):
        self.step_count += 1
        for name in self.names:
            p, g = self.params[name], grads[name]
            g = self._coupled(name, p, g)
            self._decoupled(name, p)
            if self.momentum:
                if self.buf[name] is None:
                    self.buf[name] = np.array(g, dtype=p.dtype, copy=True)
                else:
                    self.buf[name] *= self.momentum
                    self.buf[name] += g
                g = self.buf[name]
            p -= (self.lr * self.lr_scale[name] * g).astype(p.dtype, copy=False)

    def state_dict(self):
        state = {"step_count": self.step_count, "lr": self.lr}
        for name in self.names:
            if self.buf[name] is not None:
                state[f"buf/{name}"] = self.buf[name]
        return state

    def load_state_dict(self, state):
        self.step_count = int(state["step_count"])
        self.lr = float(state["lr"])
        for name in self.names:
            key = f"buf/{name}"
            self.buf[name] = np.array(state[key], copy=True) if key in state else None


class ExponentialDecay:
    """lr_epoch = lr_0 * gamma ** epoch (the paper decays by 0.93 per epoch)."""

    def __init__(self, optimizer, gamma=0.93):
        self.optimizer = optimizer
        self.gamma = check_real(gamma, "gamma", low=0.0, high=1.0, owner="ExponentialDecay")

    def set_epoch(self, epoch: int):
        self.optimizer.lr = self.optimizer.base_lr * self.gamma ** epoch


def decayed_names(net, names, decay_thresholds: bool = True) -> list:
    """The names of ``names`` that weight decay applies to: all of them, or (``decay_thresholds``
    False) only the synaptic ones: thresholds and trained decays (``net.param_groups()``'s
    "threshold" and "decay") are then never decayed."""
    if decay_thresholds:
        return list(names)
    groups = net.param_groups()
    spared = set(groups.get("threshold", [])) | set(groups.get("decay", []))
    return [n for n in names if n not in spared]


def make_optimizer(name, params, names, *, lr, weight_decay, lr_per_param=None, momentum=0.9,
                   weight_decay_mode="coupled", decay_names=None):
    """Build "adam" or "sgd" by name (``weight_decay_mode``, ``decay_names``: module docstring)."""
    decay = {"weight_decay_mode": weight_decay_mode, "decay_names": decay_names}
    if name == "adam":
        return Adam(params, names, lr=lr, weight_decay=weight_decay, lr_per_param=lr_per_param, **decay)
    if name == "sgd":
        return SGD(params, names, lr=lr, momentum=momentum, weight_decay=weight_decay,
                   lr_per_param=lr_per_param, **decay)
    raise fail("optimizer", "one of 'adam', 'sgd'", repr(name))
