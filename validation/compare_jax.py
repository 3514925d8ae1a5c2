"""Compare stlsim's BPTT gradients with an independent JAX reference (jax.grad).

Same grid, networks and output format as ``compare_torch.py``; the model is
``validation/jax_reference.py`` (jax.numpy + lax.scan + jax.custom_vjp, float64 on).
Writes ``results/jax_errors.{json,md}``.

    python validation/compare_jax.py --out validation/results --seed 0
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from compare_torch import parse_args, run_grid, write_results  # noqa: E402  (no torch import)


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    import jax

    import jax_reference

    rows = run_grid(jax_reference.run, "jax", args)
    write_results(rows, "jax_errors", "JAX jax.grad (validation/jax_reference.py)", args,
                  {"jax": jax.__version__})


if __name__ == "__main__":
    main()
