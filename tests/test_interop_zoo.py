"""The interop zoo (validation/interop_zoo.py): >= 30 of the peers' tutorial and example
models, converted and compared in float32 and float64 where the peer allows; ``rep.ok``
on every one, with every layer firing. The fast entries run in the default suite; the
whole zoo with ``-m slow`` (about 2 minutes). The table in docs/howto/check_framework.md
is ``python3 -m validation.interop_zoo``'s output.
"""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")
pytest.importorskip("norse")

from validation.interop_zoo import ZOO, run  # noqa: E402

CASES = [(entry, dtype) for entry in ZOO for dtype in entry.dtypes]


def _id(case):
    entry, dtype = case
    return f"{entry.name}-{dtype}"


def test_the_zoo_has_at_least_30_models_from_all_three_peers():
    assert len(ZOO) >= 30
    assert {entry.peer for entry in ZOO} == {"snntorch", "spikingjelly", "norse"}
    assert sum(len(entry.dtypes) for entry in ZOO) >= 45        # float32 and float64 where allowed


def _check(entry, dtype):
    rep = run(entry, dtype)
    assert rep.ok, f"{entry.name} ({dtype}):\n{rep}"
    assert min(rep.firing_rates) > 0, f"{entry.name}: a silent layer checks nothing\n{rep}"
    assert rep.rows


@pytest.mark.parametrize("case", [c for c in CASES if c[0].fast], ids=_id)
def test_fast_zoo_models_agree(case):
    _check(*case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if not c[0].fast], ids=_id)
def test_every_zoo_model_agrees(case, request):
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("the whole zoo runs with -m slow")
    _check(*case)


# ------------------------------------------------------------- injected bugs, on zoo models --

def _entry(name):
    return next(entry for entry in ZOO if entry.name == name)


def _with_hook(entry, install):
    """The entry with ``install(model)`` applied to the peer model after it is built."""
    import dataclasses

    def build():
        model = entry.build()
        install(model)
        return model
    return dataclasses.replace(entry, build=build)


def _delay_input(model, time_axis_whole):
    """An off-by-one in time: the peer's first layer sees the input one step late."""
    import torch
    state = {"previous": None}

    def hook(module, args):
        (x,) = args
        if time_axis_whole:                                   # SpikingJelly "m": (T, B, ...)
            return (torch.cat([torch.zeros_like(x[:1]), x[:-1]]),)
        previous, state["previous"] = state["previous"], x
        return (torch.zeros_like(x) if previous is None or previous.shape != x.shape else previous,)
    first = next(m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    first.register_forward_pre_hook(hook)


@pytest.mark.parametrize("name,whole", [("spikingjelly PLIF FC", True),
                                        ("snntorch Synaptic FC", False),
                                        ("norse MNIST FC (LIFCell)", False)])
def test_an_input_one_step_late_is_caught_in_the_forward_and_located(name, whole):
    entry = _entry(name)
    dtype = entry.dtypes[0]
    rep = run(_with_hook(entry, lambda model: _delay_input(model, whole)), dtype)
    assert not rep.ok and not rep.spikes_equal
    assert rep.first_divergence_pass == "forward" and rep.first_divergence[0] == 0
    assert rep.first_divergence[1] <= 1                 # the first steps already differ


def _shift_output_gradient(model):
    """An off-by-one in time in the backward: the output layer's gradient arrives one step
    early (dL/ds_t is handed to step t - 1)."""
    import torch
    last = [m for m in model.modules() if type(m).__module__.startswith(("spikingjelly", "snntorch",
                                                                          "norse"))][-1]

    def hook(module, args, output):
        spikes = output[0] if isinstance(output, tuple) else output
        if spikes.requires_grad:
            spikes.register_hook(lambda g: torch.cat([g[1:], torch.zeros_like(g[:1])]))
    last.register_forward_hook(hook)


def test_an_output_gradient_one_step_early_is_caught_and_located_in_spikingjelly():
    # SpikingJelly's multi-step neuron returns the whole sequence: its .grad (e_t) is what
    # the backward scan reads, last layer and last step first.
    entry = _entry("spikingjelly PLIF FC")
    rep = run(_with_hook(entry, _shift_output_gradient), "float64")
    assert rep.spikes_equal and not rep.ok
    assert rep.first_divergence_pass == "backward"
    layer, t, _ = rep.first_divergence
    assert layer == 1 and t == entry.T - 1


# --- small gradient bugs: a scale of 1 + 1e-8 (float64), 1 + 1e-4 (float32), a surrogate
# slope off by 1e-3, a reset detached where the peer keeps it ------------------------------

def _scale_first_weight_gradient(factor):
    def install(model):
        import torch
        first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        first.weight.register_hook(lambda grad: grad * factor)
    return install


@pytest.mark.parametrize("name,dtype,factor", [
    ("spikingjelly PLIF FC", "float64", 1 + 1e-8),
    ("norse MNIST FC (LIFCell)", "float64", 1 + 1e-8),
    ("snntorch tutorial 5 FC (atan)", "float32", 1 + 1e-4),
    ("norse MNIST FC (LIFCell)", "float32", 1 + 1e-4)])
def test_a_gradient_scaled_by_a_hair_is_caught_and_located(name, dtype, factor):
    entry = _entry(name)
    clean = run(entry, dtype)
    assert clean.ok, str(clean)
    rep = run(_with_hook(entry, _scale_first_weight_gradient(factor)), dtype)
    assert rep.spikes_equal and not rep.ok, str(rep)
    bad = [row.name for row in rep.rows if not row.ok]
    assert bad == [rep.worst] and bad[0].endswith(".weight"), str(rep)
    # the relative error is the injected one, far above the tolerance
    row = next(row for row in rep.rows if not row.ok)
    assert row.relative > 0.5 * (factor - 1) / factor


def test_a_surrogate_slope_off_by_1e_3_is_caught_in_the_backward(monkeypatch):
    import stlsim.interop as interop
    original = interop._spikingjelly_surrogate

    def off(name, module):
        surrogate = original(name, module)
        return type(surrogate)(surrogate.value * (1 + 1e-3))      # Sigmoid(alpha)
    monkeypatch.setattr(interop, "_spikingjelly_surrogate", off)
    entry = _entry("spikingjelly PLIF FC")
    rep = run(entry, "float64")
    assert rep.spikes_equal and not rep.ok, str(rep)
    # SpikingJelly's spike .grad is e_t, the part from above: the output layer's is the probe
    # on both sides; its dL/dI_t = sigma'(...) (...) is the first to differ, at the last step.
    assert rep.first_divergence_pass == "backward" and rep.first_divergence_of == "dL/dI_t"
    assert rep.first_divergence[:2] == (1, entry.T - 1)


def test_a_wrongly_detached_reset_is_caught(monkeypatch):
    import stlsim.interop as interop
    from stlsim import LIF
    original = interop._spikingjelly_neuron

    def detached(name, module, shape):
        neuron = original(name, module, shape)
        return LIF(**{**neuron.settings(), "detach_reset": True})
    monkeypatch.setattr(interop, "_spikingjelly_neuron", detached)
    entry = _entry("spikingjelly lif_fc_mnist")
    assert not any(getattr(m, "detach_reset", True) for m in entry.build().modules()
                   if hasattr(m, "detach_reset"))
    rep = run(entry, "float64")
    assert rep.spikes_equal and not rep.ok, str(rep)
    # Before: first_divergence None: one spiking layer, whose spike .grad (e_t) is the probe
    # on both sides. The reset path lives in dL/dI_t, now scanned too.
    assert rep.first_divergence_pass == "backward" and rep.first_divergence_of == "dL/dI_t"
    assert rep.first_divergence[0] == 0
    assert "first divergence (backward, dL/dI_t)" in str(rep)
