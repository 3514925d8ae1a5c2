"""What ``stlsim.interop.compare`` does outside the peer's and the twin's runs, made cheaper
without changing a report (benchmarks/interop_cost.py measures the cost):

* the float64 round-off twin computes no threshold margins (nobody reads them);
* the peer's per-step tensors reach NumPy as views (float32/float64), and float64 in one
  copy where a path needs the whole array, any float dtype included;
* their gradients come through tensor hooks, without ``retain_grad``: the same values;
* the first-divergence search over all steps at once finds what the step-by-step search found;
* ``_relative`` without temporary float64 copies gives the same (max, relative, where);
* the backward scan read a few steps or a piece at a time (``_differences``) finds what the
  whole-array ``_divergence`` found, and a layer's round-off tolerance read no further than
  needed is the old one or covers what it was asked to; in ``compare``, on equal models and
  on injected bugs, this scan ran and its first divergence is the old scan's;
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


def small_spikingjelly(seed=0):
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron
    torch.manual_seed(seed)
    return scale_weights(torch.nn.Sequential(
        torch.nn.Linear(6, 5), neuron.LIFNode(tau=2.0, step_mode="s"),
        torch.nn.Linear(5, 4), neuron.LIFNode(tau=2.0, step_mode="s")), 3.0).double()


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
def test_peer_tensors_reach_numpy_as_views_and_float64_as_stack_and_double_did(dtype):
    rng = torch.Generator().manual_seed(0)
    steps = [torch.randn(3, 4, 2, generator=rng).to(dtype).requires_grad_() * 1.5 for _ in range(5)]
    expected = torch.stack([s.detach() for s in steps]).double().numpy()
    views = [interop._as_numpy(s) for s in steps]
    if dtype in (torch.float32, torch.float64):                 # no copy: the peer's own memory
        assert all(np.shares_memory(v, s.detach().numpy()) for v, s in zip(views, steps))
    stacked = interop._steps_float64(views)
    assert stacked.dtype == np.float64 and stacked.shape == (5, 3, 4, 2)
    np.testing.assert_array_equal(stacked, expected)
    np.testing.assert_array_equal(interop._steps_float64(np.stack(views)), expected)   # step_mode "m"
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


# ---------------------------------------- the backward scan a step at a time, same answers --

def as_steps(value, dtype):
    """A (T, ...) array as the peer's steps: a list of per-step arrays in ``dtype``."""
    return list(np.asarray(value, dtype=dtype))


@pytest.mark.parametrize("piece", [4, 7, 40, 1 << 16])   # steps in pieces, 2 steps at a time, all
@pytest.mark.parametrize("seed", range(40))
def test_the_stepwise_backward_search_finds_what_the_whole_array_one_found(monkeypatch, seed, piece):
    monkeypatch.setattr(interop, "_PIECE", piece)
    ours, theirs = planted(seed)
    for layer, (a, b) in enumerate(zip(ours, theirs)):
        if a is None:
            continue
        # the peer's steps: float32 views, float64, one (T, ...) array ("m"); a NaN on either side
        for mine, steps in ((a, as_steps(b, np.float32)), (a, as_steps(b, np.float64)), (a, b),
                            (b.astype(np.float32), as_steps(a, np.float32))):
            whole = interop._steps_float64(steps)       # what the old scan compared against
            largest, scale = interop._differences(mine, steps, np.fmax)
            scale = max(scale, 1e-300)
            np.testing.assert_equal(scale, max(interop._largest_abs(whole), 1e-300))
            for tolerance in (1e-5, 1e-3, 0.0):
                old = interop._divergence([mine], [whole], [tolerance], backward=True)
                new = interop._last_step_over(mine, steps, largest, tolerance * scale)
                assert new == (None if old is None else old[1:]), (layer, tolerance)
        # a layer's round-off tolerance: read to the end, the old value; stopped early, a
        # smaller one that already covers what it was asked to
        for mine, mine64 in ((a, b), (b.astype(np.float32), a.astype(np.float64))):
            exact = max(1e-5, interop.ROUNDOFF_MULTIPLE * interop._relative(mine, mine64)[1])
            assert interop._roundoff_tolerance(mine, mine64, 1e-5, lambda tol: False) == exact
            for needed in (exact / 3, exact, exact * 2):
                got = interop._roundoff_tolerance(mine, mine64, 1e-5, lambda tol: tol >= needed)
                assert got == exact if exact < needed else needed <= got <= exact
    assert interop._roundoff_tolerance(np.zeros((0, 2)), np.zeros((0, 2)), 1e-5, lambda tol: False) == 1e-5


def step_bug(factor, step=3):
    """An injected peer bug: the gradient reaching the last neuron's spikes at ``step`` is
    scaled by ``factor`` (installed on that module as a forward hook)."""
    def install(model):
        last = list(model.children())[-1]
        calls = []

        def hook(module, inputs, output):
            spikes = output[0] if isinstance(output, tuple) else output
            if len(calls) == step and spikes.requires_grad:
                spikes.register_hook(lambda grad: grad * factor)
            calls.append(None)
        last.register_forward_hook(hook)
        return model
    return install


def old_backward_scan(tolerances, ours, theirs):
    """The scan as it was: every layer's steps as one float64 array, ``_divergence`` per
    layer, last layer first, dL/ds_t then dL/dI_t."""
    for layer in range(len(ours[0]) - 1, -1, -1):
        for quantity, mine, peer, tolerance in zip(("dL/ds_t", "dL/dI_t"), ours, theirs, tolerances):
            if peer[layer] is None:
                continue
            whole = interop._steps_float64(peer[layer])
            where = interop._divergence([mine[layer].reshape(whole.shape)], [whole], [tolerance[layer]],
                                        backward=True)
            if where is not None:
                return (layer,) + where[1:], quantity
    return None, None


@pytest.mark.parametrize("dtype,factor,roundoff", [
    (np.float32, None, "always"), (np.float32, None, "auto"), (np.float64, None, "auto"),
    (np.float32, 1 + 1e-3, "always"), (np.float32, 1 + 1e-3, "auto"), (np.float64, 1 + 1e-6, "auto")])
def test_the_stepwise_scan_ran_and_gave_the_old_scans_verdict(monkeypatch, dtype, factor, roundoff):
    """compare on an equal model and on one with an injected backward bug: the peer's steps
    stay float32 views (no float64 copies), the scan runs a step at a time (never the
    whole-array ``_divergence``), and its first divergence is the old scan's."""
    runs, calls = {"peer": [], "twin": []}, {"steps": 0, "divergence": 0, "tolerance": 0}
    for name, key in (("_run_peer", "peer"), ("_run_stlsim", "twin")):
        def recorded(*args, _original=getattr(interop, name), _key=key, **kwargs):
            result = _original(*args, **kwargs)
            runs[_key].append(result)
            return result
        monkeypatch.setattr(interop, name, recorded)
    for name, key in (("_differences", "steps"), ("_divergence", "divergence"),
                      ("_roundoff_tolerance", "tolerance")):
        def counted(*args, _original=getattr(interop, name), _key=key, **kwargs):
            calls[_key] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(interop, name, counted)
    model = small_snntorch() if dtype == np.float32 else small_spikingjelly()   # snnTorch: float32 only
    if factor is not None:
        step_bug(factor)(model)
    rep = interop.compare(model, spikes((6, 2, 6)), dtype=dtype, roundoff=roundoff)
    assert rep.spikes_equal and rep.ok == (factor is None), str(rep)
    peer_spikes, peer_adjoints, _, _, peer_currents = runs["peer"][0]
    assert all(isinstance(s, list) and s[0].dtype == dtype for s in peer_spikes + peer_adjoints)
    assert calls["steps"] > 0 and calls["divergence"] == 0            # the new scan ran, the old did not
    twin, layers = runs["twin"][0], len(peer_spikes)
    rtol = rep.rtol
    within = rep.max_rel_error <= rtol and old_backward_scan(
        ([rtol] * layers, [rtol] * layers), (twin[1], twin[5]), (peer_adjoints, peer_currents))[0] is None
    tolerances = ([rtol] * layers, [rtol] * layers)
    if rep.roundoff is not None:
        twin64 = runs["twin"][1]
        tolerances = tuple([max(rtol, interop.ROUNDOFF_MULTIPLE * interop._relative(a, b)[1])
                            for a, b in zip(twin[k], twin64[k])] for k in (1, 5))
    expected = (None, None) if within else old_backward_scan(tolerances, (twin[1], twin[5]),
                                                             (peer_adjoints, peer_currents))
    assert (rep.first_divergence, rep.first_divergence_of) == expected
    if factor is not None:                          # the bug is found, in the output layer
        assert rep.first_divergence_pass == "backward" and rep.first_divergence[0] == layers - 1
        assert calls["tolerance"] > 0 or rep.roundoff is None     # a layer's round-off was asked


def test_the_peer_run_keeps_every_gradient_that_retain_grad_kept():
    """The gradients of every step's spikes and currents reach the oracle through tensor
    hooks (without ``retain_grad``'s copy): what ``retain_grad`` keeps in ``.grad``."""
    model, x = small_snntorch(), spikes((6, 2, 6))
    conv = interop.convert(model, (6,), dtype=np.float32)
    probe = np.random.default_rng(0).normal(size=(6, 2, 4))

    def grad(output):
        return probe.reshape(output.shape)
    kept = {"s": [], "i": []}                       # the reference: retain_grad on every step

    def spike_hook(module, inputs, output):
        output[0].retain_grad() if isinstance(output, tuple) else output.retain_grad()
        kept["s"].append((module, output[0] if isinstance(output, tuple) else output))

    def current_hook(module, inputs):
        inputs[0].retain_grad()
        kept["i"].append((module, inputs[0]))
    handles = [m.register_forward_hook(spike_hook) for m in conv.neuron_modules]
    handles += [m.register_forward_pre_hook(current_hook) for m in conv.neuron_modules]
    try:
        _, adjoints, _, _, currents = interop._run_peer(conv, torch.as_tensor(x), grad)
    finally:
        for handle in handles:
            handle.remove()
    for k, module in enumerate(conv.neuron_modules):
        for got, key in ((adjoints[k], "s"), (currents[k], "i")):
            expected = [t.grad.numpy() for m, t in kept[key] if m is module]
            assert len(got) == len(expected) == 6
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)


def test_the_peer_run_does_not_call_retain_grad(monkeypatch):
    def refused(self):
        raise AssertionError("retain_grad copies every gradient it keeps")
    monkeypatch.setattr(torch.Tensor, "retain_grad", refused)
    rep = interop.compare(small_snntorch(), spikes((6, 2, 6)), dtype=np.float32, roundoff="always")
    assert rep.ok and rep.spikes_equal, str(rep)


# ------------------------------------------------------------ the benchmark's phases --

def test_the_benchmarks_phases_add_up_and_restore_the_module():
    from benchmarks.interop_cost import _phases
    originals = (interop.convert, interop._run_peer, interop._run_stlsim)
    phases = _phases(interop, small_snntorch(), spikes((6, 2, 6)))
    assert (interop.convert, interop._run_peer, interop._run_stlsim) == originals
    runs = sum(value for key, value in phases.items() if key not in ("outside_s", "compare_s"))
    assert phases["peer_hooked_run_s"] > 0 and phases["twin_float32_s"] > 0 and phases["convert_float32_s"] > 0
    assert phases["outside_s"] >= 0 and abs(runs + phases["outside_s"] - phases["compare_s"]) < 1e-9
