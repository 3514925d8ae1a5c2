"""Long checks of stlsim that write error tables and claim reports to ``validation/results/``.

Run each from the repository root as a module, e.g. ``python -m validation.compare_torch``;
``docs/validation.md`` lists them. ``validation.references`` holds the independent
PyTorch and JAX models that both these scripts and ``tests/`` compare stlsim against.
"""
