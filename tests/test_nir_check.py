"""One oracle for NIR: ``stlsim.nir.check`` runs ``stlsim.interop.compare`` on a peer's own
import of the file (docs/howto_nir.md).

* ``interop.as_chain`` reads the executors the peers' NIR importers return (a ``torch.fx``
  GraphModule from snnTorch and SpikingJelly, a nirtorch GraphExecutor from Norse) as the
  chain of their modules; a graph that is not a chain is refused by name.
* ``check(path, against=peer)`` returns interop's ``Report`` as ``.report`` and says whether
  the import is the network stlsim reads (``reading_ok``).
* A snnTorch export is checked against the exported model's own reset
  (``against=model``), and a file that is not that model fails.
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest

import stlsim
from stlsim import interop
from stlsim import nir as snir

torch = pytest.importorskip("torch")
pytest.importorskip("nir")
sys.path.insert(0, str(Path(__file__).parent))
from peer_helpers import random_spikes, scale_weights  # noqa: E402


def _stlsim_file(tmp_path):
    net = stlsim.Network([stlsim.Dense(6, 8, bias=True, init_gain=2.0),
                          stlsim.Dense(8, 4, bias=True, init_gain=2.0)],
                         neuron=stlsim.LIF(tau=0.7, theta_init=0.5), seed=1)
    path = tmp_path / "m.nir"
    snir.write(net, path, dt=1e-4)
    return path


@pytest.mark.parametrize("peer", ["snntorch", "norse", "spikingjelly"])
def test_the_peers_importers_are_read_as_chains_and_compared(peer, tmp_path):
    pytest.importorskip(peer)
    pytest.importorskip("nirtorch")
    path = _stlsim_file(tmp_path)
    executor = snir._import_with(peer, path, 1e-4)
    assert not isinstance(executor, torch.nn.Sequential)          # an executor, not a chain
    chain = interop.as_chain(executor)
    kinds = [type(m).__name__ for m in chain]
    assert kinds[::2] == ["Linear", "Linear"] and len(kinds) == 4, kinds
    ids = {id(p) for p in executor.parameters()}
    assert {id(p) for p in chain.parameters()} <= ids            # the executor's own tensors
    dtype = np.float64 if peer == "spikingjelly" else np.float32
    rep = interop.compare(executor, random_spikes((10, 4, 6), density=0.5, dtype=dtype), seed=1,
                          dtype=dtype)
    assert rep.ok and rep.spikes_equal, str(rep)


def test_a_graph_that_is_not_a_chain_is_refused_by_name():
    class Skip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            y = self.first(x)
            return self.second(y) + y

    executor = torch.fx.symbolic_trace(Skip())
    with pytest.raises(ValueError, match=r"`model` of `stlsim.interop.as_chain` must be a NIR "
                                         r"graph executor whose modules form one chain.*'first'"):
        interop.as_chain(executor)


def test_check_against_a_peer_returns_interops_report(tmp_path):
    pytest.importorskip("spikingjelly")
    path = _stlsim_file(tmp_path)
    rep = snir.check(path, against="spikingjelly", timesteps=10)
    assert isinstance(rep.report, interop.Report) and rep.report.peer == "spikingjelly"
    assert rep.ok and rep.reading_ok and rep.spikes_equal and rep.max_rel_error <= 1e-10
    assert "stlsim.interop.compare" in str(rep) and str(rep.report) in str(rep)
    assert {row[0] for row in rep.reading_rows} == {"0.weight", "0.bias", "1.weight", "1.bias"}


def _snntorch_export(tmp_path, mechanism):
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    import nir
    from snntorch.export_nir import export_to_nir
    torch.manual_seed(0)

    def leaky(n, last=False):                   # per-neuron tensors: the exporter infers shapes
        return snn.Leaky(beta=torch.full((n,), 0.8), threshold=torch.full((n,), 0.7),
                         learn_threshold=True, init_hidden=True, output=last,
                         reset_mechanism=mechanism)
    model = scale_weights(torch.nn.Sequential(torch.nn.Linear(6, 8), leaky(8),
                                              torch.nn.Linear(8, 4), leaky(4, True)), 3.0)
    with contextlib.redirect_stdout(io.StringIO()):
        graph = export_to_nir(model, torch.zeros(6))
    path = tmp_path / "snntorch.nir"
    nir.write(path, graph)
    return model, path


def test_a_snntorch_export_is_checked_against_the_exported_models_own_reset(tmp_path):
    model, path = _snntorch_export(tmp_path, "subtract")
    rep = snir.check(path, against=model, timesteps=12)
    assert rep.ok and rep.reading_ok, str(rep)
    assert "reset='subtract_after_leak'" in str(rep)
    assert {"1.threshold", "3.threshold"} <= {row.name for row in rep.report.rows}
    # snnTorch's own importer builds Leaky(reset_mechanism="zero", reset_delay=False): read
    # with the exported model's reset, the file is not what that importer runs.
    against_importer = snir.check(path, against="snntorch", timesteps=12,
                                  preset="snntorch.Leaky")
    assert against_importer.report.ok and not against_importer.reading_ok
    assert not against_importer.ok
    # A model that is not the file's (weights changed after the export) fails the reading.
    with torch.no_grad():
        model[0].weight.mul_(1.5)
    changed = snir.check(path, against=model, timesteps=12)
    assert changed.report.ok and not changed.reading_ok and not changed.ok
    assert "NO" in str(changed)


def test_check_refuses_what_is_neither_a_peer_nor_a_model(tmp_path):
    path = _stlsim_file(tmp_path)
    with pytest.raises(TypeError, match=r"`against` of `stlsim.nir.check` must be 'snntorch'"):
        snir.check(path, against=3)
