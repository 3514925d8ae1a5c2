"""stlsim.analysis: exact SOP/energy counts, noise, joint decision, report."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import stlsim
from stlsim.analysis import (E_AC, E_MAC, ann_macs, decision_accuracy, energy, event_noise, fan_out,
                             gaussian_noise, joint_decision, noise_accuracy, propagation_depth,
                             rate_stability, salt_and_pepper, spike_noise, synaptic_operations)


# ------------------------------------------------------------------- hand-computed net --
def tiny_net():
    """3-2-2 dense net, tau 0.5, theta 1, hard reset, chosen so every spike is known."""
    net = stlsim.Network([stlsim.Dense(3, 2), stlsim.Dense(2, 2)],
                         neuron=stlsim.LIF(tau=0.5, theta_init=1.0), population=1, seed=0)
    net.params["0.weight"][...] = [[1.0, 0.0, 0.0],
                                   [0.0, 0.5, 0.5]]
    net.params["1.weight"][...] = [[1.0, 0.0],
                                   [0.0, 1.0]]
    x = np.zeros((2, 2, 3))           # (T, B, 3)
    x[0, 0] = [1, 0, 0]               # sample 0: 3 input spikes
    x[1, 0] = [1, 1, 0]
    x[1, 1] = [0, 1, 1]               # sample 1: 2 input spikes (both at t = 1)
    return net, x


def test_sops_of_hand_computed_net_are_exact():
    net, x = tiny_net()
    rec = net.forward(x)
    # Layer 1 by hand: sample 0: t0 I=[1, 0] -> s=[1, 0] (spike AT threshold); t1 I=[1, 0.5]
    # -> s=[1, 0]. Sample 1: t0 silent; t1 I=[0, 1] -> s=[0, 1].
    np.testing.assert_array_equal(rec.spikes[0][:, 0], [[1, 0], [1, 0]])
    np.testing.assert_array_equal(rec.spikes[0][:, 1], [[0, 0], [0, 1]])
    ops = synaptic_operations(net, x)
    assert ops.input_ops == "sop"                                  # binary input: "auto" -> SOPs
    # fan-out is 2 in both layers: layer 1 gets 3 and 2 input spikes, layer 2 gets 2 and 1.
    np.testing.assert_array_equal(ops.per_sample, [[6, 4], [4, 2]])
    np.testing.assert_array_equal(ops.sops, [10, 6])
    assert ops.total == 16 and ops.per_sample.dtype == np.int64
    np.testing.assert_array_equal(ops.total_per_sample, [10, 6])
    np.testing.assert_array_equal(ops.input_events, [5, 3])
    np.testing.assert_array_equal(ops.ann_macs, [6, 4])
    np.testing.assert_array_equal(ops.snn_macs, [0, 0])

    e = energy(net, x)
    np.testing.assert_allclose(e.snn_per_layer, [5 * E_AC, 3 * E_AC])          # per sample: (6+4)/2, (4+2)/2
    assert e.snn_total == pytest.approx(8 * 0.9e-12)
    np.testing.assert_allclose(e.ann_per_layer, [6 * E_MAC, 4 * E_MAC])
    assert e.ann_total == pytest.approx(10 * 4.6e-12)
    assert e.ann_T_total == pytest.approx(2 * 10 * 4.6e-12)                   # T = 2 passes
    assert e.snn_batch == pytest.approx(16 * 0.9e-12)
    assert e.ratio == pytest.approx(46 / 7.2)
    e2 = energy(net, x, e_ac=1.0, e_mac=2.0, ops=ops)
    np.testing.assert_allclose(e2.snn_per_layer, [5.0, 3.0])
    assert json.dumps(e2.as_dict())                                            # serialisable


def test_input_ops_options():
    net, x = tiny_net()
    none = synaptic_operations(net, x, input_ops="none")
    np.testing.assert_array_equal(none.sops, [0, 6])
    mac = synaptic_operations(net, x, input_ops="mac")
    np.testing.assert_array_equal(mac.snn_macs_per_sample, [[2 * 6, 0], [2 * 6, 0]])   # T x dense MACs
    np.testing.assert_array_equal(mac.sops, [0, 6])
    analog = x * 0.7 + 0.1                                          # analog input: "auto" -> MACs
    ops = synaptic_operations(net, analog)
    assert ops.input_ops == "mac"
    np.testing.assert_array_equal(ops.snn_macs[0], 2 * 2 * 6)
    with pytest.raises(ValueError, match="`input_ops` of `synaptic_operations` must be"):
        synaptic_operations(net, x, input_ops="all")


def _brute_fan_out(conv):
    """Fan-out by definition: outputs x channels reached from each input position (all-ones
    weights on a one-hot input; padding taps read zeros)."""
    c_in, h, w = conv.in_shape
    ones = {"weight": np.ones(conv.param_shapes()["weight"])}
    eye = np.zeros((h * w, c_in, h, w))
    eye[np.arange(h * w), 0, np.arange(h * w) // w, np.arange(h * w) % w] = 1
    out, _ = conv.forward(eye[None], ones, stlsim.layers.Context())
    return out.reshape(h * w, -1).sum(axis=1).reshape(h, w).round().astype(np.int64)


@pytest.mark.parametrize("kernel,stride,padding,size", [(3, 1, 1, 5), (3, 2, 1, 6), (2, 2, 0, 5), (5, 1, 2, 6)])
def test_conv_fan_out_is_exact_at_borders(kernel, stride, padding, size):
    net = stlsim.Network([stlsim.Conv2d(1, 3, kernel, stride=stride, padding=padding)],
                         input_shape=(1, size, size))
    conv = net.layers[0]
    np.testing.assert_array_equal(fan_out(conv)[0], _brute_fan_out(conv))


def test_conv_sops_equal_T_macs_when_everything_spikes_without_padding():
    layers = [stlsim.Conv2d(2, 3, 3, padding=0), stlsim.MaxPool2d(2), stlsim.Flatten(), stlsim.Dense(12, 4)]
    net = stlsim.Network(layers, input_shape=(2, 6, 6), population=2)
    net.params["0.theta"][...] = -1.0                        # theta <= 0: every conv neuron fires always
    T, B = 3, 2
    x = np.ones((T, B, 2, 6, 6))
    ops = synaptic_operations(net, x)
    assert ann_macs(net.layers[0]) == 3 * 4 * 4 * 2 * 9
    np.testing.assert_array_equal(ops.sops[0], B * T * ann_macs(net.layers[0]))
    # the dense layer gets the max-pooled spikes: 3 x 2 x 2 = 12 inputs, all 1, fan-out 4
    np.testing.assert_array_equal(ops.sops[1], B * T * 12 * 4)
    assert ops.names[0].startswith("0:Conv2d") and ops.layer_index == [0, 3]
    padded = stlsim.Network([stlsim.Conv2d(1, 2, 3, padding=1), stlsim.Flatten(), stlsim.Dense(32, 2)],
                            input_shape=(1, 4, 4), population=2)
    ops = synaptic_operations(padded, np.ones((1, 1, 1, 4, 4)))
    padding_taps = 2 * (16 * 9 - 10 * 10)       # per channel, sum over positions of (2 3 3 2)x(2 3 3 2) = 100 of 144
    np.testing.assert_array_equal(ops.sops[0], ann_macs(padded.layers[0]) - padding_taps)


# -------------------------------------------------------------------------------- noise --
def test_noise_functions_are_seeded_and_identity_at_zero():
    x = np.random.default_rng(0).random((4, 10)).astype(np.float32)
    np.testing.assert_array_equal(gaussian_noise(x, 0.0, 1), x)
    a, b = gaussian_noise(x, 0.3, 7), gaussian_noise(x, 0.3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert not np.array_equal(a, gaussian_noise(x, 0.3, 8))
    np.testing.assert_array_equal(salt_and_pepper(x, 0.0, 3), x)
    sp = salt_and_pepper(x, 1.0, 3)
    assert set(np.unique(sp)) <= {0.0, 1.0}
    np.testing.assert_array_equal(sp, salt_and_pepper(x, 1.0, 3))
    spikes = (x > 0.5).astype(np.float32)
    np.testing.assert_array_equal(spike_noise(spikes, 0), spikes)
    np.testing.assert_array_equal(spike_noise(spikes, 0, delete=1.0), 0 * spikes)
    np.testing.assert_array_equal(spike_noise(spikes, 0, insert=1.0), np.ones_like(spikes))
    half = spike_noise(spikes, 5, delete=0.5)
    assert np.all(half <= spikes)
    with pytest.raises(ValueError, match="`sigma` of `gaussian_noise`"):
        gaussian_noise(x, -1.0, 0)
    with pytest.raises(TypeError, match="`rng` of `salt_and_pepper`"):
        salt_and_pepper(x, 0.1, "seed")


def test_event_noise_uses_event_helpers_deterministically():
    from stlsim.data import make_events

    rng = np.random.default_rng(0)
    events = make_events(np.sort(rng.integers(0, 1000, 200)), rng.integers(0, 8, 200),
                         rng.integers(0, 8, 200), rng.integers(0, 2, 200))
    same = event_noise(events, 0, sensor_size=(8, 8))
    np.testing.assert_array_equal(same, events)
    noisy = event_noise(events, 1, drop=0.5, insert=0.25, sensor_size=(8, 8))
    np.testing.assert_array_equal(noisy, event_noise(events, 1, drop=0.5, insert=0.25, sensor_size=(8, 8)))
    kept = len(noisy) - 50                                      # 50 = round(0.25 * 200) inserted
    assert 60 < kept < 140 and np.all(np.diff(noisy["t"]) >= 0)


def test_noise_accuracy_level_zero_is_clean_accuracy():
    net, _ = tiny_net()
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 3)), rng.integers(0, 2, 20)
    acc = noise_accuracy(net, x, y, "gaussian", [0.0, 0.5], timesteps=3, seed=1)
    clean = decision_accuracy(net, x, y, timesteps=3, seed=1)["joint (all P neurons, all T steps)"]
    assert acc[0] == clean                                     # same encoding draws at every level
    np.testing.assert_array_equal(acc, noise_accuracy(net, x, y, "gaussian", [0.0, 0.5], timesteps=3, seed=1))


# ------------------------------------------------------------------------ joint decision --
def test_joint_decision_options_by_hand():
    # T = 3, B = 2, C = 2 classes, P = 3; columns c0n0 c0n1 c0n2 c1n0 c1n1 c1n2 (rows: t)
    s = np.zeros((3, 2, 6))
    s[:, 0, 0] = [0, 1, 0]      # sample 0: class 0 counts per step [1, 2, 1] (4), class 1 [1, 1, 1] (3)
    s[:, 0, 1] = [1, 1, 1]
    s[:, 0, 3] = [1, 1, 1]
    s[:, 1, 0] = [1, 1, 0]      # sample 1: class 0 [1, 1, 0] (2), class 1 [0, 0, 3] (3)
    s[2, 1, 3:] = 1
    np.testing.assert_array_equal(joint_decision(s, 3), [0, 1])                    # joint rate
    np.testing.assert_array_equal(joint_decision(s, 3, vote="step"), [0, 0])       # steps won: 3-2 / 2-1
    np.testing.assert_array_equal(joint_decision(s, 3, neurons=1), [1, 0])         # c0n0 vs c1n0 only
    np.testing.assert_array_equal(joint_decision(s, 3, window=1), [0, 1])          # last step (0: tie)
    np.testing.assert_array_equal(joint_decision(s, 3, window=1, neurons=1), [1, 1])
    np.testing.assert_array_equal(joint_decision(s, 3, window=2), [0, 1])
    np.testing.assert_array_equal(joint_decision(s, 3), stlsim.readout.decide(s.reshape(3, 2, 2, 3).mean(axis=(0, 3))))
    with pytest.raises(ValueError, match="`neurons` of `joint_decision`"):
        joint_decision(s, 3, neurons=4)
    with pytest.raises(ValueError, match="`window` of `joint_decision`"):
        joint_decision(s, 3, window=0)


def test_decision_accuracy_joint_rule_is_the_network_decision():
    net = stlsim.Network([stlsim.Dense(5, 8), stlsim.Dense(8, 6)], population=3, seed=1,
                         neuron=stlsim.LIF(theta_init=0.3))
    rng = np.random.default_rng(2)
    x, y = rng.random((30, 5)), rng.integers(0, 2, 30)
    acc = decision_accuracy(net, x, y, timesteps=4, seed=3)
    assert set(acc) >= {"joint (all P neurons, all T steps)", "one neuron per class", "last step only", "step votes"}
    from stlsim.train import encode
    inputs = encode(x, 4, "rate", np.random.default_rng([3, 6]), net.dtype)
    assert acc["joint (all P neurons, all T steps)"] == np.mean(net.predict(inputs) == y)


# ------------------------------------------------------------------ dynamics and report --
def test_rate_stability_flags_silent_layers_and_drift():
    rates = np.array([[[0.2, 0.1], [0.2, 0.05], [0.2, 0.0], [0.2, 0.0]]])        # (seeds, epochs, layers)
    r = rate_stability(rates)
    assert r["silent_layers"] == 1 and r["drift"][0] == 0
    assert r["band_low"] == [0.2, 0.0] and r["band_high"] == [0.2, 0.05]


def test_propagation_depth_tiny():
    from stlsim.data import load_digits
    from stlsim.train import NetConfig, TrainConfig

    data = load_digits().subset(60, 30)
    out = propagation_depth(data, depths=[2, 3], modes=("stl", "sl"), seeds=[0], width=8, epochs=1,
                            netcfg=NetConfig(population=1, theta_init=1.0, init_gain=4.0),
                            trainconfig=TrainConfig(timesteps=3, backend="numpy"))
    m = out["modes"]["stl"]
    assert len(m["rates"]) == 2 and len(m["rates"][1][0]) == 3
    assert m["ratio"][0][0] == 1.0                               # one hidden layer: deepest = first
    assert np.shape(m["accuracy"]) == (1, 2)


def test_report_on_a_tiny_compare_run(tmp_path):
    from stlsim.cli import main

    run = str(tmp_path / "run")
    assert main(["compare", "--epochs", "1", "--seeds", "1", "--train-subset", "100", "--test-subset", "50",
                 "--hidden", "16", "--population", "2", "--backend", "numpy", "--out", run, "--quiet",
                 "--max-workers", "1"]) == 0
    assert main(["report", run, "--quiet", "--max-test", "30"]) == 0
    text = open(os.path.join(run, "report.md")).read()
    for heading in ("## Claims", "## Accuracy", "## Firing rates", "## Energy", "## Noise robustness",
                    "## Joint decision"):
        assert heading in text
    analysis = json.load(open(os.path.join(run, "analysis.json")))
    assert {c["claim"].split(" (")[0] for c in analysis["claims"]} >= {"STL > SL", "STL > TL"}
    for name in analysis["figures"].values():
        assert os.path.getsize(os.path.join(run, name)) > 1000
        assert f"]({name})" in text
    e = analysis["energy"]["stl"]
    assert e["names"] == ["0:Dense(64, 16)", "1:Dense(16, 20)"] and e["ann_macs_per_layer"] == [1024, 320]
    assert analysis["max_test"] == 30
    assert main(["report", str(tmp_path / "missing"), "--quiet"]) == 2


def test_import_is_lean():
    code = ("import sys, stlsim.analysis; print(','.join(m for m in ('matplotlib', 'h5py', 'numba', "
            "'stlsim.data', 'stlsim.train') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_gjdf_gain_pairs_runs_by_seed_and_checks_them():
    from stlsim.experiment.report import check_claims, gjdf_gain

    def run(population, accs, seeds=(0, 1)):
        return {"config": {"network": {"population": population}, "seeds": list(seeds)},
                "dataset": {"n_train": 100}, "modes": {"stl": {"test_accuracy_per_seed": accs}}}

    gain = gjdf_gain(run(10, [0.9, 0.8]), run(1, [0.7, 0.85]))
    assert gain == {"stl": {"P": [1, 10], "per_seed": [[0.7, 0.85], [0.9, 0.8]]}}
    rows = check_claims({"accuracy": {}, "rates": {}}, gain)
    assert rows[0]["verdict"] == "mixed" and "+7.50 points" in rows[0]["evidence"]
    with pytest.raises(ValueError, match="`baseline` of `gjdf_gain`"):
        gjdf_gain(run(10, [0.9, 0.8]), run(1, [0.7, 0.85], seeds=(0, 2)))
    with pytest.raises(ValueError, match="populations 2 and 10"):
        gjdf_gain(run(10, [0.9, 0.8]), run(2, [0.7, 0.85]))


def test_average_pooled_inputs_cost_macs_not_sops():
    net = stlsim.Network([stlsim.Conv2d(1, 1, 1), stlsim.AvgPool2d(2), stlsim.Flatten(), stlsim.Dense(4, 2)],
                         input_shape=(1, 4, 4), neuron=stlsim.LIF(theta_init=1.0))
    net.params["0.weight"][...] = 1.0                          # 1x1 conv: spikes = input (theta 1)
    checkerboard = (np.indices((4, 4)).sum(axis=0) % 2).astype(float)
    x = np.broadcast_to(checkerboard, (3, 1, 1, 4, 4))          # T = 3, 8 input spikes per step
    ops = synaptic_operations(net, x)
    np.testing.assert_array_equal(ops.sops, [3 * 8, 0])         # fan-out 1 per input position
    np.testing.assert_array_equal(ops.snn_macs, [0, 3 * 4 * 2])  # pooled values 0.5: 4 inputs x fan-out 2
    e = energy(net, x)
    np.testing.assert_allclose(e.snn_per_layer, [24 * E_AC, 24 * E_MAC])
