"""The benchmark workloads and their shared inputs, weights and thresholds."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple          # (n_in, hidden..., n_classes)
    T: int
    B: int
    input_rate: float     # mean Bernoulli input probability
    gain: float           # weight init gain (U(-g/sqrt(in), g/sqrt(in)))
    theta: float          # threshold init
    tau: float = 0.5

    @property
    def label(self) -> str:
        return f"{'-'.join(map(str, self.sizes))} T={self.T} B={self.B}"


WORKLOADS = {
    "784-800-10": Workload("784-800-10", (784, 800, 10), 8, 128, 0.25, 3.0, 1.0),
    "784-256-256-10": Workload("784-256-256-10", (784, 256, 256, 10), 8, 128, 0.25, 3.0, 1.0),
    "700-128-20": Workload("700-128-20", (700, 128, 20), 1000, 1, 0.05, 3.0, 1.0),
}

# --quick: the same layer structures, small enough for a smoke run.
QUICK = {
    "784-800-10": Workload("784-800-10", (784, 800, 10), 4, 16, 0.25, 3.0, 1.0),
    "784-256-256-10": Workload("784-256-256-10", (784, 256, 256, 10), 4, 16, 0.25, 3.0, 1.0),
    "700-128-20": Workload("700-128-20", (700, 128, 20), 100, 1, 0.05, 3.0, 1.0),
}


def make_problem(workload: Workload, dtype, seed: int = 0) -> dict:
    """Inputs, labels, weights (out, in) and thresholds, as NumPy arrays of ``dtype``."""
    rng = np.random.default_rng(seed)
    weights, thetas = [], []
    for n_in, n_out in zip(workload.sizes[:-1], workload.sizes[1:]):
        bound = workload.gain / np.sqrt(n_in)
        weights.append(rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype))
        thetas.append(np.full(n_out, workload.theta, dtype=dtype))
    p = rng.uniform(0, 2 * workload.input_rate, workload.sizes[0])
    x = (rng.random((workload.T, workload.B, workload.sizes[0])) < p).astype(dtype)
    y = rng.integers(0, workload.sizes[-1], workload.B)
    return {"x": x, "y": y, "weights": weights, "thetas": thetas, "tau": workload.tau}
