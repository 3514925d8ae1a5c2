"""stlsim against the independent JAX reference (validation/references/jax_model.py), float64."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from validation.compare_torch import random_case, stlsim_run  # noqa: E402
from validation.references import jax_model  # noqa: E402

CASES = [  # sizes, population, bias, analog, run options
    ([10, 12, 4], 2, True, False, dict(reset="hard", detach_reset=False, surrogate="atan", loss="mse_rate")),
    ([8, 9, 3], 1, False, True, dict(reset="soft", detach_reset=True, surrogate="superspike", loss="ce_rate")),
    ([8, 9, 3], 3, True, False, dict(reset="soft", detach_reset=False, surrogate="sigmoid", loss="mse_rate",
                                     smooth=True)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_stlsim_matches_jax(case):
    sizes, population, bias, analog, options = CASES[case]
    rng = np.random.default_rng(40 + case)
    params, x, y = random_case(rng, sizes, 12, 3, population=population, bias=bias, analog=analog)
    kw = dict(population=population, **options)
    ref = jax_model.run(params, x, y, **kw)
    got = stlsim_run(params, x, y, sizes=sizes, **kw)
    if not options.get("smooth"):
        for a, b in zip(got["spikes"], ref["spikes"]):
            np.testing.assert_array_equal(a, b)
        for s in ref["spikes"]:
            assert 0.03 < s.mean() < 0.97
    for a, b in zip(got["membranes"], ref["membranes"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert abs(got["loss"] - ref["loss"]) <= 1e-12
    for key, g in ref["grads"].items():
        err = np.max(np.abs(got["grads"][key] - g))
        assert err <= 1e-10 * np.max(np.abs(g)) + 1e-300, f"{key}: {err:.3e}"
