"""Synaptic operations (SOPs) counted from actual spikes, and the energy they cost.

The convention of the field (summarised in ``docs/analysis.md``, Energy)::

    SNN:  E = E_AC * sum_l SOP_l,     SOP_l = sum over the spikes entering layer l of their fan-out
    ANN:  E = E_MAC * sum_l MAC_l,    MAC_l = multiply-accumulates of layer l on one image
    E_AC = 0.9 pJ, E_MAC = 4.6 pJ    (45 nm CMOS, 32-bit float; Horowitz, ISSCC 2014)

Counting rules, per *synaptic* layer (a layer with weights: ``Dense``, ``Conv2d``):

* The signal entering layer l is what actually reaches it: the previous spiking layer's
  spikes passed through the layers in between (flatten, reshape, max pooling, dropout,
  which is the identity in evaluation), or the network input for the first layer.
* Each nonzero input entry at step t costs its **fan-out**: the number of synapses it
  drives. ``Dense(n_in, n_out)``: n_out for every input. ``Conv2d``: for input position
  (c, h, w), ``C_out * n_h(h) * n_w(w)``, where n_h(h) counts the output rows whose
  receptive field covers row h (kernel taps that land on zero padding drive nothing, so
  border positions have a smaller fan-out; counted exactly, not as C_out k^2 / s^2).
* Binary entries (0/1 spikes) cost one accumulate (AC) per synapse: SOPs. Non-binary
  entries inside the network (after average pooling) need a multiply: they are counted
  as MACs of the SNN (``snn_macs``), entry by entry with the same fan-out.
* Biases, BatchNorm (foldable into the weights at inference) and the neuron updates
  (L2)-(L4) are not synaptic operations and are not counted, as in the literature.

The network input (``input_ops``):

* ``"auto"`` (default): ``"sop"`` if the input is binary (rate-coded spikes, event
  frames of 0/1), ``"mac"`` otherwise (direct/analog input).
* ``"sop"``: input spikes x fan-out, as for any other layer.
* ``"mac"``: the first synaptic layer is a dense product on analog values: its full
  ANN MAC count at every one of the T steps (the simulator evaluates (L1) every step);
  this is the convention of direct-encoding papers (E_MAC for the encoding layer).
* ``"none"``: the first synaptic layer is left out (some papers count from layer 2).

The equivalent ANN has the same layer shapes and processes each image once:
``MAC_l`` = n_in n_out (dense), C_out H_out W_out C_in k_h k_w (conv, padding taps
included, as ptflops/thop count them). ``ann_joules_T`` is the alternative that runs
the ANN T times (one pass per SNN step). With every input position spiking at every step
and no padding, SOP_l = T * MAC_l exactly (tested).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._checks import check_choice, check_real, fail

__all__ = ["SynapticOps", "Energy", "synaptic_operations", "energy", "fan_out", "ann_macs",
           "E_AC", "E_MAC", "INPUT_OPS"]

E_AC = 0.9e-12     # J per accumulate (32-bit float add, 45 nm)
E_MAC = 4.6e-12    # J per multiply-accumulate (32-bit float mult + add, 45 nm)
INPUT_OPS = ("auto", "sop", "mac", "none")


@dataclass
class SynapticOps:
    """Operation counts of one forward pass of a batch (exact integers).

    Per synaptic layer l (index into ``layer_index`` / ``names``):
    ``per_sample[b, l]`` SOPs of sample b; ``sops[l]`` their sum over the batch;
    ``snn_macs_per_sample[b, l]`` / ``snn_macs[l]`` MACs the SNN does on non-binary
    inputs (analog network input with ``input_ops="mac"``, average pooling);
    ``input_events[l]`` nonzero entries entering layer l (summed over t and b);
    ``fan_out_total[l]`` the sum of the fan-out over one input sample's positions;
    ``ann_macs[l]`` MACs of the equivalent ANN for ONE image, one pass.
    """

    names: list
    layer_index: list
    timesteps: int
    batch_size: int
    input_ops: str
    per_sample: np.ndarray
    snn_macs_per_sample: np.ndarray
    input_events: np.ndarray
    ann_macs: np.ndarray
    fan_out_total: np.ndarray = field(repr=False)

    @property
    def sops(self) -> np.ndarray:
        """SOPs per layer, summed over the batch (int64)."""
        return self.per_sample.sum(axis=0)

    @property
    def snn_macs(self) -> np.ndarray:
        return self.snn_macs_per_sample.sum(axis=0)

    @property
    def total(self) -> int:
        """All SOPs of the batch."""
        return int(self.per_sample.sum())

    @property
    def total_per_sample(self) -> np.ndarray:
        """SOPs of each sample, all layers (int64, shape (B,))."""
        return self.per_sample.sum(axis=1)

    @property
    def mean_per_sample(self) -> np.ndarray:
        """Mean SOPs per sample, per layer (float)."""
        return self.per_sample.mean(axis=0)

    def as_dict(self) -> dict:
        return {"names": list(self.names), "layer_index": list(self.layer_index),
                "timesteps": self.timesteps, "batch_size": self.batch_size,
                "input_ops": self.input_ops, "sops_per_layer": self.sops.tolist(),
                "sops_total": self.total, "sops_mean_per_sample": self.mean_per_sample.tolist(),
                "snn_macs_per_layer": self.snn_macs.tolist(),
                "input_events_per_layer": self.input_events.tolist(),
                "ann_macs_per_layer": self.ann_macs.tolist(), "ann_macs_total": int(self.ann_macs.sum())}


@dataclass
class Energy:
    """Energy per inference (one sample, mean over the batch), in joules.

    ``snn_per_layer[l] = E_AC * SOP_l + E_MAC * snn_MAC_l`` (per sample, mean);
    ``ann_per_layer[l] = E_MAC * MAC_l`` (one pass); ``ann_T_per_layer`` = T passes.
    ``ratio`` = ANN (one pass) / SNN. Batch totals: ``snn_batch``.
    """

    names: list
    e_ac: float
    e_mac: float
    snn_per_layer: np.ndarray
    ann_per_layer: np.ndarray
    ann_T_per_layer: np.ndarray
    snn_batch: float
    ops: SynapticOps = field(repr=False)

    @property
    def snn_total(self) -> float:
        return float(self.snn_per_layer.sum())

    @property
    def ann_total(self) -> float:
        return float(self.ann_per_layer.sum())

    @property
    def ann_T_total(self) -> float:
        return float(self.ann_T_per_layer.sum())

    @property
    def ratio(self) -> float:
        """ANN (one pass) energy / SNN energy (inf if the SNN spent nothing)."""
        return self.ann_total / self.snn_total if self.snn_total > 0 else float("inf")

    def as_dict(self) -> dict:
        return {"names": list(self.names), "e_ac": self.e_ac, "e_mac": self.e_mac,
                "snn_joules_per_layer": self.snn_per_layer.tolist(), "snn_joules": self.snn_total,
                "ann_joules_per_layer": self.ann_per_layer.tolist(), "ann_joules": self.ann_total,
                "ann_T_joules_per_layer": self.ann_T_per_layer.tolist(), "ann_T_joules": self.ann_T_total,
                "ann_over_snn": self.ratio, "snn_joules_batch": self.snn_batch,
                "ops": self.ops.as_dict()}


# ------------------------------------------------------------------------- fan-out --
def _covering_outputs(size: int, out: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """For each input index along one axis: how many output indices read it (taps on
    padding excluded)."""
    counts = np.zeros(size, dtype=np.int64)
    for o in range(out):
        for k in range(kernel):
            i = o * stride + k - padding
            if 0 <= i < size:
                counts[i] += 1
    return counts


def fan_out(layer) -> np.ndarray:
    """Synapses driven by each input position of a synaptic layer (int64, ``in_shape``)."""
    from ..layers.conv import Conv2d
    from ..layers.dense import Dense

    if isinstance(layer, Dense):
        return np.full(layer.in_shape, layer.out_features, dtype=np.int64)
    if isinstance(layer, Conv2d):
        c_in, height, width = layer.in_shape
        c_out, h_out, w_out = layer.out_shape
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        rows = _covering_outputs(height, h_out, kh, sh, ph)
        cols = _covering_outputs(width, w_out, kw, sw, pw)
        per_position = c_out * rows[:, None] * cols[None, :]
        return np.broadcast_to(per_position, (c_in, height, width)).copy()
    raise fail("layer", "a Dense or Conv2d layer (the synaptic layers stlsim knows)",
               type(layer).__name__, "fan_out", TypeError)


def ann_macs(layer) -> int:
    """MACs of the layer's synapses on one input (equivalent ANN, one pass)."""
    from ..layers.conv import Conv2d
    from ..layers.dense import Dense

    if isinstance(layer, Dense):
        recurrent = {"all": layer.out_features ** 2, "one": layer.out_features}.get(
            layer.recurrent, 0)                         # an RNN cell's recurrent product
        return layer.in_features * layer.out_features + recurrent
    if isinstance(layer, Conv2d):
        kh, kw = layer.kernel_size
        return int(np.prod(layer.out_shape)) * layer.in_channels * kh * kw
    raise fail("layer", "a Dense or Conv2d layer", type(layer).__name__, "ann_macs", TypeError)


# -------------------------------------------------------------------------- counting --
def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def synaptic_operations(net, x, *, input_ops: str = "auto", record=None, backend=None) -> SynapticOps:
    """Count the synaptic operations of ``net`` on the input batch ``x`` (T, B, *input_shape).

    Runs ``net.forward(x)`` in evaluation mode (or uses ``record``, a ``Record`` of that
    same call) and counts, for every synaptic layer, the nonzero entries that reach it
    times their fan-out (module docstring). ``input_ops`` decides how the network input
    counts: "auto" (default; SOPs if binary, else MACs), "sop", "mac" or "none". A
    recurrent layer (docs/model.md (L1r)) adds its own spikes of steps 1..T-1 times their
    recurrent fan-out (out_features for "all", 1 for "one"), and its equivalent ANN the
    recurrent product's MACs.
    """
    from ..layers.base import Context

    owner = "synaptic_operations"
    input_ops = check_choice(input_ops, "input_ops", INPUT_OPS, owner)
    x = net._check_input(x)
    if record is None:
        record = net.forward(x, backend=backend)
    elif len(record.spikes) != len(net.spiking_layers) or record.spikes[0].shape[:2] != x.shape[:2]:
        raise fail("record", f"a Record of this network on x of shape {x.shape}",
                   "a Record of another call", owner)
    if input_ops == "auto":
        input_ops = "sop" if _is_binary(x) else "mac"
    T, B = x.shape[:2]
    spikes_of = dict(zip(record.layer_index, record.spikes))
    ctx = Context(training=False)
    names, index, per_sample, macs, events, ann, fan_totals = [], [], [], [], [], [], []
    signal, first = x, True
    for i, layer in enumerate(net.layers):
        if not layer.has_neurons:
            signal, _ = layer.forward(signal, {}, ctx)      # pooling/flatten/dropout (eval): pass through
            continue
        fan = fan_out(layer)
        nonzero = (signal != 0).reshape(T, B, -1)
        counts = nonzero.sum(axis=0, dtype=np.int64)                    # (B, n_in) events per input
        ops = counts @ fan.reshape(-1)                                  # (B,) events x fan-out
        sample_macs = np.zeros(B, dtype=np.int64)
        if first and input_ops == "mac":
            sample_macs = np.full(B, T * ann_macs(layer), dtype=np.int64)
            ops = np.zeros(B, dtype=np.int64)
        elif first and input_ops == "none":
            ops = np.zeros(B, dtype=np.int64)
        elif not first and not _is_binary(signal):
            sample_macs, ops = ops, np.zeros(B, dtype=np.int64)         # weighted inputs need a multiply
        recurrent = getattr(layer, "recurrent", None)
        if recurrent is not None:          # (L1r): the layer's own spikes of steps 1..T-1 feed back
            own = spikes_of[i].reshape(T, B, -1)[:-1] != 0
            ops = ops + own.sum(axis=(0, 2), dtype=np.int64) * (
                layer.out_features if recurrent == "all" else 1)
        names.append(f"{i}:{layer!r}")
        index.append(i)
        per_sample.append(ops)
        macs.append(sample_macs)
        events.append(int(counts.sum()))
        ann.append(ann_macs(layer))
        fan_totals.append(int(fan.sum()))
        signal, first = spikes_of[i], False
    return SynapticOps(names=names, layer_index=index, timesteps=T, batch_size=B, input_ops=input_ops,
                       per_sample=np.stack(per_sample, axis=1).astype(np.int64),
                       snn_macs_per_sample=np.stack(macs, axis=1).astype(np.int64),
                       input_events=np.array(events, dtype=np.int64),
                       ann_macs=np.array(ann, dtype=np.int64),
                       fan_out_total=np.array(fan_totals, dtype=np.int64))


def energy(net, x, e_ac: float = E_AC, e_mac: float = E_MAC, *, input_ops: str = "auto",
           ops: SynapticOps | None = None, record=None, backend=None) -> Energy:
    """Energy per inference of ``net`` on ``x`` and of the equivalent ANN, per layer (J).

    SNN: ``E_AC * SOP_l + E_MAC * snn_MAC_l`` per sample (mean over the batch).
    ANN: ``E_MAC * MAC_l``, one pass per image (``ann_T_per_layer``: T passes).
    ``ops``: counts from ``synaptic_operations`` to reuse (else counted here).
    """
    owner = "energy"
    e_ac = check_real(e_ac, "e_ac", low=0.0, owner=owner)
    e_mac = check_real(e_mac, "e_mac", low=0.0, owner=owner)
    if ops is None:
        ops = synaptic_operations(net, x, input_ops=input_ops, record=record, backend=backend)
    elif not isinstance(ops, SynapticOps):
        raise fail("ops", "a SynapticOps from synaptic_operations", type(ops).__name__, owner, TypeError)
    per_sample = e_ac * ops.per_sample + e_mac * ops.snn_macs_per_sample     # (B, L) joules
    ann = e_mac * ops.ann_macs.astype(np.float64)
    return Energy(names=list(ops.names), e_ac=e_ac, e_mac=e_mac,
                  snn_per_layer=per_sample.mean(axis=0), ann_per_layer=ann,
                  ann_T_per_layer=ops.timesteps * ann, snn_batch=float(per_sample.sum()), ops=ops)
