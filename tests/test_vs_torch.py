"""stlsim's hand-written BPTT (B1)-(B6) against PyTorch autograd on the spec's forward.

The reference (validation/references/torch_model.py) is written from docs/model.md alone. Budgets:
float64 spiking mode: spikes equal, membranes and loss within 1e-12, gradients within
1e-10 of the largest reference entry of each tensor; float32: 1e-4. Negative tests show
that a mismatched convention (detach_reset, reset mode) is detected.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from validation.compare_torch import SURROGATES, random_case, stlsim_network, stlsim_run  # noqa: E402
from validation.references import torch_model  # noqa: E402

torch.set_num_threads(1)

RESETS = ("hard", "soft")
DETACH = (False, True)
LOSSES = ("mse_rate", "ce_rate")
# (layer sizes [n_in, hidden..., classes], population, bias, analog input)
SHAPES = [([12, 16, 5], 2, True, False),
          ([10, 4], 1, False, False),
          ([8, 9, 7, 3], 3, True, True),
          ([14, 11, 4], 1, False, True)]


def assert_grads_close(got: dict, ref: dict, rel: float):
    assert set(got) == set(ref)
    for key in ref:
        scale = float(np.max(np.abs(ref[key])))
        err = float(np.max(np.abs(got[key] - ref[key])))
        assert err <= rel * scale + 1e-300, f"{key}: max abs err {err:.3e}, max |ref| {scale:.3e}"


def assert_forward_equal(got: dict, ref: dict, tol: float):
    for l, (a, b) in enumerate(zip(got["spikes"], ref["spikes"])):
        np.testing.assert_array_equal(a, b, err_msg=f"spikes of layer {l}")
    for l, (a, b) in enumerate(zip(got["membranes"], ref["membranes"])):
        np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(1.0, np.max(np.abs(b))),
                                   err_msg=f"membrane of layer {l}")
    np.testing.assert_allclose(got["rates"], ref["rates"], rtol=0, atol=tol)
    assert abs(got["loss"] - ref["loss"]) <= tol * max(1.0, abs(ref["loss"]))


def assert_active(ref: dict):
    """The case is not vacuous: every layer spikes, but not always."""
    for l, s in enumerate(ref["spikes"]):
        assert 0.03 < s.mean() < 0.97, f"layer {l} spike rate {s.mean():.3f}"


def both(params, x, y, sizes, **kw):
    got = stlsim_run(params, x, y, sizes=sizes, **kw)
    ref = torch_model.run(params, x, y, **kw)
    return got, ref


GRID = list(itertools.product(RESETS, DETACH, SURROGATES, LOSSES))


@pytest.mark.parametrize("reset,detach,surrogate,loss", GRID)
def test_spiking_float64_matches_torch(reset, detach, surrogate, loss):
    index = GRID.index((reset, detach, surrogate, loss))
    sizes, population, bias, analog = SHAPES[index % len(SHAPES)]
    rng = np.random.default_rng(1000 + index)
    T = int(rng.integers(8, 21))
    params, x, y = random_case(rng, sizes, T, 3, population=population, bias=bias, analog=analog)
    kw = dict(population=population, reset=reset, detach_reset=detach, surrogate=surrogate, loss=loss)
    got, ref = both(params, x, y, sizes, **kw)
    assert_active(ref)
    assert_forward_equal(got, ref, 1e-12)
    assert_grads_close(got["grads"], ref["grads"], 1e-10)
    # Network.forward (not only the record of loss_and_grad) gives the same trajectory
    net = stlsim_network(params, sizes=sizes, population=population, reset=reset,
                         detach_reset=detach, surrogate=surrogate)
    record = net.forward(x)
    for l in range(len(sizes) - 1):
        np.testing.assert_array_equal(record.spikes[l], ref["spikes"][l])
        np.testing.assert_allclose(record.membrane[l], ref["membranes"][l], rtol=0, atol=1e-12)
    np.testing.assert_allclose(record.rates, ref["rates"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("reset,detach,surrogate", list(itertools.product(RESETS, DETACH, SURROGATES)))
def test_smooth_float64_matches_torch(reset, detach, surrogate):
    rng = np.random.default_rng(2000 + 100 * RESETS.index(reset) + 10 * detach + SURROGATES.index(surrogate))
    sizes, population = [9, 8, 3], 2
    loss = LOSSES[int(rng.integers(2))]
    params, x, y = random_case(rng, sizes, 10, 2, population=population, bias=True, analog=True)
    kw = dict(population=population, reset=reset, detach_reset=detach, surrogate=surrogate,
              loss=loss, smooth=True)
    got, ref = both(params, x, y, sizes, **kw)
    for a, b in zip(got["spikes"], ref["spikes"]):  # smooth "spikes" are P(m - theta)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    for a, b in zip(got["membranes"], ref["membranes"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert abs(got["loss"] - ref["loss"]) <= 1e-12
    assert_grads_close(got["grads"], ref["grads"], 1e-10)


@pytest.mark.parametrize("reset,detach,surrogate", list(itertools.product(RESETS, DETACH, SURROGATES)))
def test_spiking_float32_matches_torch_float32(reset, detach, surrogate):
    # Dyadic weights/thresholds and T <= 8 keep every membrane exact in float32, so the
    # spike trains cannot depend on summation order and only the backward rounds.
    rng = np.random.default_rng(7 + 100 * RESETS.index(reset) + 10 * detach + SURROGATES.index(surrogate))
    sizes, population = [10, 12, 4], 2
    params, x, y = random_case(rng, sizes, 8, 3, population=population, bias=detach, dyadic=True)
    kw = dict(population=population, reset=reset, detach_reset=detach, surrogate=surrogate,
              loss=LOSSES[SURROGATES.index(surrogate) % 2], dtype=np.float32)
    got, ref = both(params, x, y, sizes, **kw)
    assert_active(ref)
    assert_forward_equal(got, ref, 1e-6)
    assert_grads_close(got["grads"], ref["grads"], 1e-4)


@pytest.mark.parametrize("reset", RESETS)
def test_spike_at_threshold_ties(reset):
    """Dyadic values make m == theta happen exactly; H(0) = 1 must fire there (L3)."""
    rng = np.random.default_rng(3)
    sizes = [6, 10, 3]
    params, x, y = random_case(rng, sizes, 12, 4, bias=False, dyadic=True)
    params = {k: (np.round(v * 4) / 4 if k.endswith("weight") else np.round(v * 2) / 2)
              for k, v in params.items()}
    kw = dict(reset=reset, surrogate="rectangular")
    got, ref = both(params, x, y, sizes, **kw)
    ties = sum(int(np.sum(m == params[f"{l}.theta"])) for l, m in enumerate(ref["membranes"]))
    assert ties > 0
    assert_forward_equal(got, ref, 1e-12)
    assert_grads_close(got["grads"], ref["grads"], 1e-10)


def test_nonpositive_threshold_fires_without_input():
    sizes = [5, 6, 2]
    rng = np.random.default_rng(4)
    params, _, y = random_case(rng, sizes, 6, 2, nonpositive_fraction=0.5)
    x = np.zeros((6, 2, 5))
    got, ref = both(params, x, y, sizes, reset="soft", surrogate="atan")
    first = got["spikes"][0]
    silent_input_fires = params["0.theta"] <= 0
    assert silent_input_fires.any()
    assert np.all(first[0][:, silent_input_fires] == 1)
    assert_forward_equal(got, ref, 1e-12)
    assert_grads_close(got["grads"], ref["grads"], 1e-10)


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("flip", ["detach_reset", "reset"])
def test_mismatched_convention_is_detected(reset, flip):
    """Negative test: the comparison is sensitive to the reset conventions."""
    rng = np.random.default_rng(5)
    sizes, population = [12, 16, 4], 2
    params, x, y = random_case(rng, sizes, 15, 4, population=population, bias=False)
    kw = dict(population=population, reset=reset, detach_reset=False, surrogate="atan")
    got, ref = both(params, x, y, sizes, **kw)
    assert_active(ref)
    assert_grads_close(got["grads"], ref["grads"], 1e-10)
    wrong_kw = dict(kw)
    if flip == "detach_reset":
        wrong_kw["detach_reset"] = True
    else:
        wrong_kw["reset"] = {"hard": "soft", "soft": "hard"}[reset]
    wrong = torch_model.run(params, x, y, **wrong_kw)
    total = sum(np.sum(g ** 2) for g in ref["grads"].values()) ** 0.5
    gap = sum(np.sum((got["grads"][k] - wrong["grads"][k]) ** 2) for k in ref["grads"]) ** 0.5
    assert gap > 0.05 * total, f"gradient gap {gap:.3e} vs norm {total:.3e}"
    theta_gap = np.max(np.abs(got["grads"]["0.theta"] - wrong["grads"]["0.theta"]))
    assert theta_gap > 1e-3 * np.max(np.abs(ref["grads"]["0.theta"]))


def _other_paths():
    try:
        from stlsim.engines import BACKENDS, ENGINES
    except ImportError:
        return []
    return [(b, e) for b in BACKENDS for e in ENGINES
            if (b, e) != ("numpy", "clock") and "cuda" not in b]


@pytest.mark.parametrize("backend,engine", _other_paths())
@pytest.mark.parametrize("reset,detach", [("hard", False), ("soft", True)])
def test_other_backends_match_torch(backend, engine, reset, detach):
    import importlib

    from stlsim.engines import BACKENDS, ENGINES
    for module in (BACKENDS[backend], ENGINES[engine]):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            pytest.skip(f"{module} not available yet")
    rng = np.random.default_rng(6)
    sizes, population = [12, 16, 4], 2
    params, x, y = random_case(rng, sizes, 12, 3, population=population, bias=True)
    kw = dict(population=population, reset=reset, detach_reset=detach, surrogate="sigmoid",
              loss="ce_rate")
    ref = torch_model.run(params, x, y, **kw)
    got = stlsim_run(params, x, y, sizes=sizes, backend=backend, engine=engine, **kw)
    assert_forward_equal(got, ref, 1e-12)
    assert_grads_close(got["grads"], ref["grads"], 1e-10)
