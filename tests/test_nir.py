"""NIR read/write (stlsim.nir; the dt mapping of its module docstring, docs/howto_nir.md).

* stlsim -> NIR -> stlsim is exact for what NIR represents plus what the metadata carries:
  the same parameters, neurons, surrogate and readout, and bit-identical spikes and
  gradients (``net.probe_grad``).
* Without stlsim's metadata a graph reads as NIR defines it (hard reset, H(0) = 0), its
  decays and gains from the Euler step; the caller's conventions then give back the model.
* Parts NIR cannot represent are refused unless ``allow_lossy=True``, which says what is lost.
* A file written by snnTorch's own ``export_to_nir`` matches the snnTorch model (float32).
* ``stlsim check`` on the command line, alone and against a peer's own importer.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import stlsim

nir = pytest.importorskip("nir")
import stlsim.nir as snir


def _spikes(shape, seed=1, density=0.5, dtype=np.float64):
    return (np.random.default_rng(seed).random(shape) < density).astype(dtype)


def _probe(net, x, seed=2):
    shape = x.shape[:2] + tuple(net.layers[-1].out_shape)
    return np.random.default_rng(seed).standard_normal(shape).astype(net.dtype)


def _set_thetas(net, low, high, seed=5):
    rng = np.random.default_rng(seed)
    for key in net.params:
        if key.endswith(".theta"):
            net.params[key][...] = rng.uniform(low, high, net.params[key].shape)


def dense_mixed(dtype=np.float64):
    net = stlsim.Network(
        [stlsim.Dense(6, 9, bias=True, init_gain=2.0), stlsim.Dense(9, 8, init_gain=2.0)],
        neuron=[stlsim.LIF(tau=0.7, reset="soft", detach_reset=True),
                stlsim.LIF(tau=np.linspace(0.2, 0.9, 8), spike_at_threshold=False,
                           input_gain=0.5, v_leak=0.1, v_reset=-0.05, v_init=0.2)],
        surrogate=stlsim.surrogate.Sigmoid(3.0), population=2, seed=1, dtype=dtype,
        backend="numpy")
    _set_thetas(net, 0.2, 0.9)
    return net


def conv_net():
    net = stlsim.Network(
        [stlsim.Conv2d(1, 3, 3, padding=1, bias=True, threshold_sharing="channel", init_gain=3.0),
         stlsim.AvgPool2d(2), stlsim.Conv2d(3, 4, 3, stride=2, init_gain=3.0),
         stlsim.Flatten(), stlsim.Dense(4, 6, threshold_sharing="layer", init_gain=2.0)],
        neuron=stlsim.LIF(tau=0.6, theta_init=0.3), input_shape=(1, 8, 8), seed=3,
        backend="numpy")
    return net


def synaptic_learned():
    neuron = stlsim.LIF.preset("snntorch.Synaptic", tau=0.8, alpha_syn=0.6, learn_tau="factor",
                               learn_alpha_syn=True)
    net = stlsim.Network([stlsim.Dense(6, 7, init_gain=2.0), stlsim.Dense(7, 5, init_gain=2.0)],
                         neuron=neuron, seed=4, backend="numpy")
    net.params["0.tau"][:] = 0.75                     # trained away from the initial value
    net.params["1.alpha_syn"][:] = 0.55
    _set_thetas(net, 0.2, 0.8)
    return net


def if_and_after_leak():
    net = stlsim.Network([stlsim.Dense(6, 7, init_gain=2.0), stlsim.Dense(7, 5, init_gain=2.0)],
                         neuron=[stlsim.LIF(tau=1.0, input_gain=0.5, v_reset=0.1),
                                 stlsim.LIF.preset("snntorch.Leaky", tau=0.9)],
                         seed=6, backend="numpy")
    _set_thetas(net, 0.3, 1.0)
    return net


def sigmoid_tau():
    neuron = stlsim.LIF.preset("spikingjelly.ParametricLIFNode")
    net = stlsim.Network([stlsim.Dense(6, 7, init_gain=3.0), stlsim.Dense(7, 4, init_gain=3.0)],
                         neuron=neuron, seed=8, backend="numpy")
    net.params["0.tau_w"][:] = 0.3
    _set_thetas(net, 0.1, 0.5)
    return net


def sigmoid_tau_per_neuron():
    neuron = stlsim.LIF.preset("spikingjelly.ParametricLIFNode", tau=np.linspace(0.3, 0.8, 7))
    net = stlsim.Network([stlsim.Dense(6, 7, init_gain=3.0), stlsim.Dense(7, 4, init_gain=3.0)],
                         neuron=[neuron, stlsim.LIF(tau=0.5, theta_init=0.3)], seed=9,
                         backend="numpy")
    _set_thetas(net, 0.1, 0.5)
    return net


NETS = {"dense_mixed": dense_mixed, "dense_float32": lambda: dense_mixed(np.float32),
        "conv": conv_net, "synaptic_learned": synaptic_learned, "if_after_leak": if_and_after_leak,
        "plif": sigmoid_tau, "plif_per_neuron": sigmoid_tau_per_neuron}


def _same_run(a, b, x, probe):
    la, ga, ra = a.probe_grad(x, probe)
    lb, gb, rb = b.probe_grad(x, probe)
    assert la == lb
    assert set(ga) == set(gb)
    for key in ga:
        assert np.array_equal(ga[key], gb[key]), key
    for sa, sb in zip(ra.spikes, rb.spikes):
        assert np.array_equal(sa, sb)
    return ra


# ------------------------------------------------------------------------ round trip --

@pytest.mark.parametrize("name", list(NETS))
def test_round_trip_is_exact(name, tmp_path):
    net = NETS[name]()
    path = tmp_path / "model.nir"
    resets = [n.reset for n in net.neurons]
    if all(r == "hard" for r in resets):
        assert snir.write(net, path, dt=1e-3) == []
    else:                            # other readers would reset hard: written only when lossy
        with pytest.raises(ValueError, match="allow_lossy=True.*reset="):
            snir.write(net, path, dt=1e-3)
        with pytest.warns(UserWarning, match="lossy"):
            losses = snir.write(net, path, dt=1e-3, allow_lossy=True)
        assert len(losses) == sum(r != "hard" for r in resets)
        assert all("reset hard" in loss for loss in losses)
    back = snir.read(path, backend="numpy")
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in net.layers]
    assert back.neurons == net.neurons
    assert back.surrogate == net.surrogate
    assert (back.population, back.dtype) == (net.population, net.dtype)
    assert set(back.params) == set(net.params)
    for key, value in net.params.items():
        assert back.params[key].dtype == value.dtype
        assert np.array_equal(back.params[key], value), key
    x = _spikes((10, 3) + net.input_shape, dtype=net.dtype)
    record = _same_run(net, back, x, _probe(net, x))
    assert any(s.mean() > 0 for s in record.spikes)          # something happened


def test_the_file_is_plain_nir_and_written_atomically(tmp_path):
    net = dense_mixed()
    path = tmp_path / "sub" / "model.nir"
    with pytest.warns(UserWarning, match="lossy"):
        snir.write(net, path, dt=1e-3, allow_lossy=True)         # layer 0 resets soft
    graph = nir.read(path)                                    # the nir package reads it itself
    kinds = {k: type(v).__name__ for k, v in graph.nodes.items()}
    assert kinds == {"input": "Input", "dense0": "Affine", "lif0": "LIF", "dense1": "Linear",
                     "lif1": "LIF", "output": "Output"}
    assert np.array_equal(graph.nodes["lif1"].v_threshold, net.params["1.theta"])
    record = json.loads(graph.nodes["input"].metadata["stlsim"])
    assert record["dt"] == 1e-3 and record["schema"] == snir.SCHEMA
    assert "stlsim_version" in record["provenance"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(path.parent) == ["model.nir"]          # no temporary file left behind


# --------------------------------------------------------------- NIR's own meaning --

def test_dt_maps_time_constants_to_decay_and_gain(tmp_path):
    """a = 1 - dt/tau, g = r dt/tau (LIF); a = 1, g = r dt (IF); c = 1 - dt/tau_syn."""
    net = stlsim.Network([stlsim.Dense(3, 4), stlsim.Dense(4, 2)],
                         neuron=[stlsim.LIF(tau=0.9, input_gain=0.5),
                                 stlsim.LIF(tau=0.8, alpha_syn=0.75)], seed=0)
    graph, _ = snir.to_nir(net, dt=1e-3)
    lif = graph.nodes["lif0"]
    assert np.allclose(lif.tau, 1e-3 / 0.1) and np.allclose(lif.r, 0.5 / 0.1)
    cuba = graph.nodes["lif1"]
    assert type(cuba).__name__ == "CubaLIF"
    assert np.allclose(cuba.tau_syn, 1e-3 / 0.25) and np.allclose(cuba.w_in, 4.0)
    for node in graph.nodes.values():
        node.metadata = {}
    graph.metadata = {}
    twice = snir.from_nir(graph, dt=2e-3)                     # another step: other factors
    assert twice.neurons[0].tau == pytest.approx(1 - 2e-3 / 1e-2)
    assert twice.neurons[0].input_gain == pytest.approx(5.0 * 2e-3 / 1e-2)
    assert twice.neurons[1].alpha_syn == pytest.approx(1 - 2e-3 / 4e-3)
    assert twice.neurons[1].input_gain == pytest.approx((1 / 0.2) * 0.4 * 4.0 * 0.5)
    with pytest.raises(ValueError, match="`dt` of `stlsim.nir.read` must be at most"):
        snir.from_nir(graph, dt=0.02)
    with pytest.raises(ValueError, match="`dt` of `stlsim.nir.read` must be given"):
        snir.from_nir(graph)


def test_without_metadata_the_graph_reads_as_nir_says_and_conventions_restore_it(tmp_path):
    net = stlsim.Network([stlsim.Dense(6, 9, init_gain=2.0), stlsim.Dense(9, 8, init_gain=2.0)],
                         neuron=stlsim.LIF(tau=0.7, reset="soft", detach_reset=True),
                         surrogate="sigmoid", seed=1, backend="numpy")
    _set_thetas(net, 0.2, 0.9)
    with pytest.raises(ValueError, match=r"`layers\[0\]` of `stlsim.nir.write`.*reset='soft'"):
        snir.to_nir(net, dt=1e-3)                      # before: written silently
    graph, losses = snir.to_nir(net, dt=1e-3, allow_lossy=True)
    assert len(losses) == 2 and "layers[0] a neuron with reset='soft'" in losses[0]
    for node in graph.nodes.values():
        node.metadata = {}
    graph.metadata = {}
    plain = snir.from_nir(graph, dt=1e-3, backend="numpy")
    neuron = plain.neurons[0]
    assert (neuron.reset, neuron.spike_at_threshold, neuron.detach_reset) == ("hard", False, False)
    assert neuron.tau == pytest.approx(0.7, rel=1e-14) and neuron.input_gain == pytest.approx(1.0)
    assert plain.surrogate == stlsim.surrogate.get("atan")
    x = _spikes((12, 4, 6))
    probe = _probe(net, x)
    _, _, rec = net.probe_grad(x, probe)
    _, _, rec_plain = plain.probe_grad(x, probe)
    assert not all(np.array_equal(a, b) for a, b in zip(rec.spikes, rec_plain.spikes))
    restored = snir.from_nir(graph, dt=1e-3, surrogate="sigmoid", reset="soft", detach_reset=True,
                             spike_at_threshold=True, backend="numpy")
    _, grads, rec_back = restored.probe_grad(x, probe)
    _, ref, _ = net.probe_grad(x, probe)
    for a, b in zip(rec.spikes, rec_back.spikes):
        assert np.array_equal(a, b)
    for key in ref:                    # tau = 1 - dt/(dt/(1 - 0.7)) differs in the last bits
        assert np.allclose(grads[key], ref[key], rtol=1e-12, atol=1e-12), key
    with pytest.raises(TypeError, match="one of the settings NIR cannot carry"):
        snir.from_nir(graph, dt=1e-3, tau=0.5)


def test_graphs_stlsim_cannot_read_are_refused_by_name():
    net = stlsim.Network([stlsim.Dense(3, 4), stlsim.Dense(4, 2)], seed=0)
    graph, _ = snir.to_nir(net, dt=1e-3)
    graph.nodes["lif0"].r = np.array([1.0, 2.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="the input gain r dt/tau of node 'lif0'"):
        snir.from_nir(graph)
    graph, _ = snir.to_nir(net, dt=1e-3)
    graph.edges.append(("dense0", "output"))
    with pytest.raises(ValueError, match="a chain"):
        snir.from_nir(graph)
    graph, _ = snir.to_nir(net, dt=1e-3)
    graph.nodes["lif0"] = nir.LI(tau=np.ones(4), r=np.ones(4), v_leak=np.zeros(4))
    with pytest.raises(ValueError, match="node 'lif0'"):
        snir.from_nir(graph)


def test_bad_files_get_one_clear_error(tmp_path):
    path = tmp_path / "bad.nir"
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="bad.nir"):
        snir.read(path)
    with pytest.raises(FileNotFoundError):
        snir.read(tmp_path / "missing.nir")
    with pytest.raises(TypeError, match="`net` of `stlsim.nir.write` must be a stlsim.Network"):
        snir.write("net", tmp_path / "x.nir", dt=1e-3)
    with pytest.raises(ValueError, match="`dt` of `stlsim.nir.write`"):
        snir.write(dense_mixed(), tmp_path / "x.nir", dt=0.0)
    assert not (tmp_path / "x.nir").exists()


# --------------------------------------------------------------------------- lossy --

LOSSY = [
    ([stlsim.Conv2d(1, 2, 3, init_gain=3.0), stlsim.MaxPool2d(2), stlsim.Flatten(),
      stlsim.Dense(2 * 3 * 3, 4)], "MaxPool2d"),
    ([stlsim.Dense(6, 8, init_gain=2.0), stlsim.Dropout(0.3), stlsim.Dense(8, 4)], "Dropout"),
]


@pytest.mark.parametrize("layers,what", LOSSY)
def test_parts_nir_cannot_represent_are_refused_unless_lossy(layers, what, tmp_path):
    shape = (1, 8, 8) if what == "MaxPool2d" else (6,)
    net = stlsim.Network(layers, neuron=stlsim.LIF(tau=0.6, theta_init=0.3), input_shape=shape,
                         seed=2, backend="numpy")
    path = tmp_path / "m.nir"
    with pytest.raises(ValueError, match=f"allow_lossy=True.*{what}"):
        snir.write(net, path, dt=1e-3)
    assert not path.exists()
    with pytest.warns(UserWarning, match=what):
        losses = snir.write(net, path, dt=1e-3, allow_lossy=True)
    assert len(losses) == 1 and what in losses[0]
    kinds = [type(n).__name__ for n in nir.read(path).nodes.values()]
    assert "Dropout" not in kinds
    back = snir.read(path, backend="numpy")     # stlsim restores the layer from the metadata
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in net.layers]
    x = _spikes((8, 3) + shape)
    _same_run(net, back, x, _probe(net, x))


def test_batchnorm_is_folded_only_when_lossy(tmp_path):
    net = stlsim.Network([stlsim.Conv2d(1, 2, 3, batchnorm=True, init_gain=3.0), stlsim.Flatten(),
                          stlsim.Dense(2 * 6 * 6, 4, init_gain=2.0)],
                         neuron=stlsim.LIF(tau=0.6, theta_init=0.3), input_shape=(1, 8, 8), seed=2,
                         backend="numpy")
    rng = np.random.default_rng(0)
    net.params["0.bn_weight"][:] = rng.uniform(0.5, 2, 2)
    net.params["0.bn_bias"][:] = rng.uniform(-0.2, 0.2, 2)
    net.buffers["0.bn_running_mean"][:] = rng.uniform(-0.1, 0.1, 2)
    net.buffers["0.bn_running_var"][:] = rng.uniform(0.5, 1.5, 2)
    with pytest.raises(ValueError, match="BatchNorm"):
        snir.write(net, tmp_path / "bn.nir", dt=1e-3)
    with pytest.warns(UserWarning, match="BatchNorm"):
        snir.write(net, tmp_path / "bn.nir", dt=1e-3, allow_lossy=True)
    back = snir.read(tmp_path / "bn.nir", backend="numpy")
    assert not back.layers[0].batchnorm and back.layers[0].bias
    x = _spikes((8, 3, 1, 8, 8))
    ours, theirs = net.forward(x), back.forward(x)          # the evaluation forward is kept
    for a, b in zip(ours.membrane, theirs.membrane):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert ours.spikes[0].mean() > 0


# -------------------------------------------------------------------- snnTorch's file --

def _snntorch_model(torch, snn, net, reset_mechanism, beta):
    linears = []
    for i in net.spiking_layers:
        w = torch.tensor(net.params[f"{i}.weight"], dtype=torch.float32)
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data = w
        lin.bias.data = torch.tensor(net.params[f"{i}.bias"], dtype=torch.float32)
        linears.append(lin)
    mods = []
    for k, lin in enumerate(linears):
        n = lin.weight.shape[0]
        thr = torch.tensor(net.params[f"{net.spiking_layers[k]}.theta"], dtype=torch.float32)
        mods += [lin, snn.Leaky(beta=torch.full((n,), beta), threshold=thr, learn_threshold=True,
                                init_hidden=True, reset_mechanism=reset_mechanism,
                                output=k == len(linears) - 1)]
    return torch.nn.Sequential(*mods)


def _run_snntorch(torch, snn, model, x, probe):
    from snntorch import utils
    utils.reset(model)
    outs = []
    for t in range(x.shape[0]):
        out = model(torch.as_tensor(x[t]))
        outs.append(out[0] if isinstance(out, tuple) else out)
    spikes = torch.stack(outs)
    (spikes * torch.as_tensor(probe)).sum().backward()
    grads = {}
    for k, (lin, lif) in enumerate(zip(model[0::2], model[1::2])):
        grads[f"{k}.weight"] = lin.weight.grad.double().numpy()
        grads[f"{k}.bias"] = lin.bias.grad.double().numpy()
        grads[f"{k}.theta"] = lif.threshold.grad.double().numpy()
    return spikes.detach().double().numpy(), grads


@pytest.mark.parametrize("reset_mechanism", ["zero", "subtract"])
def test_a_file_written_by_snntorch_matches_the_snntorch_model(reset_mechanism, tmp_path):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.export_nir import export_to_nir
    beta = 0.8
    # The Linear + Leaky pairs k of the snnTorch Sequential are stlsim's layers k after
    # reading, so the same keys name the same parameters in ``template`` and ``net``.
    template = stlsim.Network([stlsim.Dense(6, 9, bias=True, init_gain=2.0),
                               stlsim.Dense(9, 5, bias=True, init_gain=2.0)], seed=3,
                              dtype=np.float32)
    _set_thetas(template, 0.3, 1.0)
    model = _snntorch_model(torch, snn, template, reset_mechanism, beta)
    graph = export_to_nir(model, torch.zeros(6))     # snnTorch's own exporter (dt = 1e-4)
    path = tmp_path / "snntorch.nir"
    nir.write(path, graph)
    x = _spikes((12, 4, 6), dtype=np.float32)
    probe = np.random.default_rng(4).standard_normal((12, 4, 5)).astype(np.float32)
    spikes, theirs = _run_snntorch(torch, snn, model, x, probe)
    # snnTorch runs in float32 (its spikes are float32), and so does stlsim here; the file
    # holds tau = dt/(1 - beta) and r = 1/(1 - beta) in float32, so a and g come back within
    # float32 round-off of beta and 1. Bound: 2e-5 relative, as the convention tests.
    net = snir.read(path, dt=1e-4, preset="snntorch.Leaky.zero", dtype=np.float32)
    assert net.neurons[0].tau == pytest.approx(beta, rel=1e-6)
    assert net.neurons[0].input_gain == pytest.approx(1.0, rel=1e-6)
    for key in ("0.weight", "0.bias", "0.theta", "1.weight", "1.bias", "1.theta"):
        assert np.array_equal(net.params[key], template.params[key]), key
    _, grads, record = net.probe_grad(x, probe)
    same_spikes = np.array_equal(record.spikes[-1], spikes)
    if reset_mechanism == "subtract":
        # snnTorch's exporter writes no reset mechanism: NIR's hard reset is a different model
        assert not same_spikes
        net = snir.read(path, dt=1e-4, preset="snntorch.Leaky", dtype=np.float32)
        _, grads, record = net.probe_grad(x, probe)
    assert np.array_equal(record.spikes[-1], spikes)
    assert record.spikes[0].mean() > 0.05 and spikes.mean() > 0.05
    for key, ref in theirs.items():
        scale = float(np.max(np.abs(ref)))
        err = float(np.max(np.abs(grads[key].astype(np.float64) - ref))) / scale
        assert scale > 1e-6 and err <= 2e-5, f"{key}: {err:.2e}"


def test_check_against_the_peers_own_importers(tmp_path):
    pytest.importorskip("torch")
    net = stlsim.Network([stlsim.Dense(6, 8, bias=True, init_gain=2.0),
                          stlsim.Dense(8, 4, bias=True, init_gain=2.0)],
                         neuron=stlsim.LIF(tau=0.7, theta_init=0.5), seed=1)
    path = tmp_path / "m.nir"
    snir.write(net, path, dt=1e-4)
    alone = snir.check(path)
    assert alone.ok and alone.against is None and "0.theta" in str(alone)
    if _has("spikingjelly"):
        rep = snir.check(path, against="spikingjelly", timesteps=10)
        assert rep.ok and rep.spikes_equal and rep.max_rel_error <= 1e-10
    if _has("snntorch") and _has("nirtorch"):
        rep = snir.check(path, against="snntorch", timesteps=10)
        assert rep.ok and rep.max_rel_error <= 1e-4, str(rep)
    if _has("norse"):
        # Norse's importer ignores r (it warns): with r dt/tau = 1 here but dt/tau = 0.3,
        # its neurons get 0.3 of the current stlsim's do.
        rep = snir.check(path, against="norse", timesteps=10)
        assert not rep.ok and rep.worst is not None
        from stlsim import cli
        assert cli.main(["check", str(path), "--against", "norse"]) == 1    # a failed check
        gain = stlsim.LIF(tau=0.7, theta_init=0.1, input_gain=0.3)    # r = 1: Norse's case
        norse_net = stlsim.Network([stlsim.Dense(6, 8, bias=True, init_gain=3.0),
                                    stlsim.Dense(8, 4, bias=True, init_gain=3.0)],
                                   neuron=gain, seed=1)
        snir.write(norse_net, path, dt=1e-4)
        rep = snir.check(path, against="norse", timesteps=10)
        assert rep.ok, str(rep)


def _has(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


# ----------------------------------------------------------------------------- CLI --

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "stlsim", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_cli_check(tmp_path):
    net = stlsim.Network([stlsim.Dense(6, 8, init_gain=2.0), stlsim.Dense(8, 4, init_gain=2.0)],
                         neuron=stlsim.LIF(tau=0.7, theta_init=0.5), seed=1)
    path = tmp_path / "m.nir"
    snir.write(net, path, dt=1e-3)
    done = _cli("check", str(path), "--timesteps", "6", "--batch", "2")
    assert done.returncode == 0, done.stderr
    assert "1.theta" in done.stdout and "dt = 0.001" in done.stdout
    if _has("spikingjelly") and _has("torch"):
        done = _cli("check", str(path), "--against", "spikingjelly")
        assert done.returncode == 0, done.stderr
        assert "spikes identical" in done.stdout
    bad = tmp_path / "bad.nir"
    bad.write_text("no")
    done = _cli("check", str(bad))
    assert done.returncode == 2 and "bad.nir" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_import_stlsim_does_not_import_nir():
    code = ("import sys, stlsim, stlsim.nir; "
            "print('nir' in sys.modules, 'h5py' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.stdout.split() == ["False", "False", "False"], out.stderr


def test_a_conv_file_written_by_spikingjelly_matches_the_spikingjelly_model(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    pytest.importorskip("nirtorch")
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        layer.Conv2d(1, 3, 3, padding=1), neuron.LIFNode(tau=2.0, v_threshold=0.3),
        layer.AvgPool2d(2), layer.Conv2d(3, 4, 3, stride=2),
        neuron.LIFNode(tau=3.0, decay_input=False, v_threshold=0.3),
        layer.Flatten(), layer.Linear(4, 5), neuron.LIFNode(tau=2.0, v_threshold=0.2)).double()
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.weight.data *= 3.0
    functional.set_step_mode(model, "m")
    x = torch.as_tensor(_spikes((12, 3, 1, 8, 8)))
    path = tmp_path / "sj.nir"
    nir.write(path, export_to_nir(model, x[:, :1], dt=1e-4))   # SpikingJelly's own exporter
    functional.reset_net(model)
    spikes = model(x)
    probe = torch.as_tensor(np.random.default_rng(3).standard_normal(tuple(spikes.shape)))
    (spikes * probe).sum().backward()
    # SpikingJelly's LIFNode(tau, decay_input) is (L2g) with a = 1 - 1/tau and g = 1/tau
    # (or 1): its exporter writes tau_NIR = tau dt and r = 1 (or tau), which read back at the
    # same dt as exactly those. What NIR does not carry is the preset's: H(0) = 1, Sigmoid(4).
    net = snir.read(path, dt=1e-4, preset="spikingjelly.LIFNode", backend="numpy")
    assert [type(layer).__name__ for layer in net.layers] == ["Conv2d", "AvgPool2d", "Conv2d",
                                                              "Flatten", "Dense"]
    assert net.neurons[1].tau == pytest.approx(2 / 3, rel=1e-15)
    assert net.neurons[1].input_gain == pytest.approx(1.0, rel=1e-15)
    _, grads, record = net.probe_grad(x.numpy(), probe.numpy())
    assert np.array_equal(record.spikes[-1], spikes.detach().numpy())
    assert all(s.mean() > 0.01 for s in record.spikes)
    named = dict(model.named_parameters())
    for ours, theirs in ((0, 0), (2, 3), (4, 6)):
        for part in ("weight", "bias"):
            ref = named[f"{theirs}.{part}"].grad.numpy()
            err = np.max(np.abs(grads[f"{ours}.{part}"] - ref)) / np.max(np.abs(ref))
            assert np.max(np.abs(ref)) > 1e-6 and err <= 1e-12, (ours, part, err)


def test_the_neuron_in_use_is_public_and_checked():
    net = synaptic_learned()
    neuron = net.neuron_in_use(0)
    assert neuron.tau == pytest.approx(0.75) and neuron.alpha_syn == pytest.approx(0.6)
    with pytest.raises(ValueError, match="`i` of `Network.neuron_in_use`"):
        net.neuron_in_use(5)
