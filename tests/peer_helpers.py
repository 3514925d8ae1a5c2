"""What the tests against snnTorch, SpikingJelly and Norse share: seeded input spikes and a
weight scale that makes a peer's small default init fire (torch imported by the caller)."""
import numpy as np


def random_spikes(shape, density=0.3, seed=0, dtype=np.float32):
    """Bernoulli(``density``) spikes of ``shape``, drawn from ``default_rng(seed)``."""
    return (np.random.default_rng(seed).random(shape) < density).astype(dtype)


def scale_weights(model, factor):
    """``model`` with the weights of its Linear and Conv2d layers multiplied by ``factor`` (in place)."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.weight.mul_(factor)
    return model
