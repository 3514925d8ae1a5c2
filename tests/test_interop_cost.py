"""What ``stlsim.interop.compare`` does outside the peer's and the twin's runs, made cheaper
without changing a report (benchmarks/interop_cost.py measures the cost):

* the float64 round-off twin computes no threshold margins (nobody reads them);
* the peer's per-step tensors reach NumPy float64 in one copy, any float dtype included;
* the first-divergence search over all steps at once finds what the step-by-step search found;
* ``_relative`` without temporary float64 copies gives the same (max, relative, where);
* the benchmark's phase split of one ``compare`` call adds up and leaves the module as it was.
Skipped without torch (and snnTorch where a model needs it).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import stlsim.interop as interop  # noqa: E402
from peer_helpers import random_spikes, scale_weights  # noqa: E402

spikes = functools.partial(random_spikes, density=0.3, dtype=np.float32)


def small_snntorch(seed=0):
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(seed)
    return scale_weights(torch.nn.Sequential(
        torch.nn.Linear(6, 5), snn.Leaky(beta=0.8, init_hidden=True),
        torch.nn.Linear(5, 4), snn.Leaky(beta=0.8, init_hidden=True, output=True)), 3.0)


# --------------------------------------------------------------- the float64 round-off twin --

def test_the_roundoff_twin_runs_without_margins_and_the_report_keeps_them(monkeypatch):
    calls = []
    original = interop._run_stlsim

    def recorded(conv, *args, **kwargs):
        result = original(conv, *args, **kwargs)
        calls.append((conv.dtype, kwargs.get("margins", True), result[3]))
        return result
    monkeypatch.setattr(interop, "_run_stlsim", recorded)
    rep = interop.compare(small_snntorch(), spikes((6, 2, 6)), dtype=np.float32, roundoff="always")
    assert [(dtype, asked) for dtype, asked, _ in calls] == [(np.float32, True), (np.float64, False)]
    assert calls[1][2] is None                                   # the float64 run made none
    assert rep.min_margin == min(float(np.min(m)) for m in calls[0][2])   # from the float32 twin's


def test_run_stlsim_without_margins_returns_the_same_run():
    model = small_snntorch()
    x = spikes((6, 2, 6))
    conv = interop.convert(model, (6,), dtype=np.float32)
    probe = np.random.default_rng(0).normal(size=(6, 2, 4))

    def grad(output):
        return probe.reshape(output.shape)
    with_margins = interop._run_stlsim(conv, x, grad)
    without = interop._run_stlsim(conv, x, grad, margins=False)
    assert without[3] is None and len(with_margins[3]) == 2
    for a, b in zip(with_margins[0] + with_margins[1] + with_margins[5], without[0] + without[1] + without[5]):
        np.testing.assert_array_equal(a, b)
    assert with_margins[2].keys() == without[2].keys()
    for key in with_margins[2]:
        np.testing.assert_array_equal(with_margins[2][key], without[2][key])


# ------------------------------------------------------------------- torch to NumPy --

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_peer_tensors_reach_float64_numpy_as_stack_and_double_did(dtype):
    rng = torch.Generator().manual_seed(0)
    steps = [torch.randn(3, 4, 2, generator=rng).to(dtype).requires_grad_() * 1.5 for _ in range(5)]
    expected = torch.stack([s.detach() for s in steps]).double().numpy()
    stacked = interop._float64_stack(steps)
    assert stacked.dtype == np.float64 and stacked.shape == (5, 3, 4, 2)
    np.testing.assert_array_equal(stacked, expected)
    single = interop._float64(steps[0])
    np.testing.assert_array_equal(single, steps[0].detach().double().numpy())
    if dtype in (torch.float32, torch.float64):                 # a copy, not a view of the tensor
        assert not np.shares_memory(single, steps[0].detach().numpy())


# ------------------------------------------------------------ comparisons, unchanged --

def divergence_step_by_step(ours, theirs, rtol, backward):
    """The search as it was: one step at a time (the reference for the vectorised one)."""
    order = range(len(ours) - 1, -1, -1) if backward else range(len(ours))
    for layer in order:
        a, b = ours[layer], theirs[layer]
        if a is None or b is None:
            continue
        tolerance = rtol[layer] if isinstance(rtol, (list, tuple)) else rtol
        n = int(np.prod(b.shape[2:]))
        a = a.reshape(a.shape[0], -1).astype(np.float64)
        b = b.reshape(b.shape[0], -1)
        scale = max(float(np.max(np.abs(b))), 1e-300) if backward else 0.0
        steps = range(a.shape[0] - 1, -1, -1) if backward else range(a.shape[0])
        for t in steps:
            bad = np.abs(a[t] - b[t]) > tolerance * scale
            if np.any(bad):
                return layer, t, int(np.flatnonzero(bad)[0] % n)
    return None


def relative_with_copies(ours, theirs):
    diff = np.abs(ours - theirs)
    if not diff.size:
        return 0.0, 0.0, ()
    scale = max(float(np.max(np.abs(theirs))), float(np.max(np.abs(ours))), 1e-300)
    where = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape))
    return float(np.max(diff)), float(np.max(diff)) / scale, where


def planted(seed):
    """Three layers of (T, B, ...) float64 values and float32 copies with a few planted
    differences (some within 1e-5, some beyond, a NaN now and then); a None layer too."""
    rng = np.random.default_rng(seed)
    theirs, ours = [], []
    for shape in ((7, 3, 5), (7, 3, 2, 4), (7, 3, 6)):
        b = rng.normal(size=shape)
        a = b.astype(np.float32)
        flat = a.reshape(-1)
        for _ in range(rng.integers(0, 4)):
            flat[rng.integers(flat.size)] *= np.float32(1 + rng.choice([1e-7, 1e-4, 1e-2]))
        if rng.random() < 0.2:
            flat[rng.integers(flat.size)] = np.nan
        theirs.append(b)
        ours.append(a)
    if rng.random() < 0.3:
        ours[1] = None
    return ours, theirs


@pytest.mark.parametrize("seed", range(40))
def test_the_vectorised_first_divergence_is_the_step_by_step_one(seed):
    ours, theirs = planted(seed)
    for rtol in (1e-5, [1e-5, 1e-3, 0.0], 0.0):
        for backward in (True, False):
            assert interop._divergence(ours, theirs, rtol, backward) == \
                divergence_step_by_step(ours, theirs, rtol, backward), (rtol, backward)


@pytest.mark.parametrize("seed", range(20))
def test_relative_without_copies_is_the_same(seed):
    ours, theirs = planted(seed)
    for a, b in zip(ours, theirs):
        if a is None:
            continue
        got, expected = interop._relative(a, b), relative_with_copies(a.astype(np.float64), b)
        np.testing.assert_equal(got, expected)
    assert interop._relative(np.zeros((0, 2)), np.zeros((0, 2))) == (0.0, 0.0, ())
    scalar = (np.array(2.5, dtype=np.float32), np.array(2.0))        # a shape () parameter (snnTorch beta)
    np.testing.assert_equal(interop._relative(*scalar), relative_with_copies(*scalar))
    signed = np.array([[-0.0, 0.0], [-3.0, np.inf]])
    np.testing.assert_equal(interop._relative(signed, -signed), relative_with_copies(signed, -signed))


# ------------------------------------------------------------ the benchmark's phases --

def test_the_benchmarks_phases_add_up_and_restore_the_module():
    from benchmarks.interop_cost import _phases
    originals = (interop.convert, interop._run_peer, interop._run_stlsim)
    phases = _phases(interop, small_snntorch(), spikes((6, 2, 6)))
    assert (interop.convert, interop._run_peer, interop._run_stlsim) == originals
    runs = sum(value for key, value in phases.items() if key not in ("outside_s", "compare_s"))
    assert phases["peer_hooked_run_s"] > 0 and phases["twin_float32_s"] > 0 and phases["convert_float32_s"] > 0
    assert phases["outside_s"] >= 0 and abs(runs + phases["outside_s"] - phases["compare_s"]) < 1e-9
