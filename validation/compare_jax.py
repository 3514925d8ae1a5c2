"""Compare stlsim's BPTT gradients with an independent JAX reference (jax.grad).

Same grid, networks and output format as ``compare_torch.py``; the model is
``validation/references/jax_model.py`` (jax.numpy + lax.scan + jax.custom_vjp, float64 on).
Writes ``results/jax_errors.{json,md}``.

    python -m validation.compare_jax --out validation/results --seed 0      # from the repo root
"""
from __future__ import annotations

from validation.compare_torch import parse_args, run_grid, write_results  # imports no torch


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import jax

    from validation.references import jax_model

    rows = run_grid(jax_model.run, "jax", args)
    write_results(rows, "jax_errors", "JAX jax.grad (validation/references/jax_model.py)", args,
                  {"jax": jax.__version__})


if __name__ == "__main__":
    main()
