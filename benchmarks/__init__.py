"""Peer benchmark of stlsim's training step (``python -m benchmarks``).

Builds the same STL-SNN networks (Dense LIF layers, learnable per-neuron thresholds,
hard reset, atan surrogate, rate MSE loss) in stlsim (NumPy and Numba backends), plain
PyTorch autograd, torch.compile, snnTorch and SpikingJelly; checks that all compute the
same loss on the same inputs and weights; then times forward + backward steps in one
process, alternating implementations, and reports medians, ratios and peak memory.
See ``docs/performance.md``.
"""
