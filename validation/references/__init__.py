"""Independent reference models of the STL-SNN network, shared by ``tests/`` and ``validation/``.

* ``torch_model``: the forward pass in torch operations, gradients by PyTorch autograd;
* ``jax_model``: the forward pass in ``jax.numpy`` with ``lax.scan``, gradients by ``jax.grad``.

Both are written from the equations of ``docs/model.md`` only, share no code with stlsim or
each other, and have the same ``run(params, x, y, **options)`` signature and result dict.
Each imports its framework at import time, so import the one you need:
``from validation.references import torch_model``.
"""
