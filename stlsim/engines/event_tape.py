"""What the event engine keeps between its forward and backward passes.

The tape holds input and spike events only (``SpikeEvents``), never a dense membrane:
the backward and a ``Record`` recompute what they need from the input events with the
same kernel (same numbers). ``EventTape`` also offers the clock ``Tape``'s fields
(``spikes``, ``membrane``, ``currents``, ``thetas``) as lists of dense arrays, rebuilt
on first access by the engine's ``rebuild`` function.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from collections.abc import Callable

import numpy as np

from ..spike_events import SpikeEvents

__all__ = ["EventLayerTape", "Kept", "EventTape", "spike_events_of", "detach_parameters",
           "attach_parameters"]


@dataclass
class EventLayerTape:
    """What the event engine keeps of one ``Dense`` layer: its input and output events
    (and references to its parameters). No membrane: the backward and a ``Record``
    recompute what they need from the input events (same kernel, same numbers)."""

    inputs: SpikeEvents
    spikes: SpikeEvents
    theta: np.ndarray        # per neuron, contiguous
    weight: np.ndarray
    bias: np.ndarray | None
    settings: dict           # kernel arguments shared by forward, re-runs and backward
    out_shape: tuple
    dense: tuple | None = None   # (I, m, s) once rebuilt for a Record
    weight_t: tuple | None = None   # (W.T buffer, serial) of the last copy for this layer
    cached_weight_t: np.ndarray | None = None   # W.T kept by the caller for unchanged weights
    has_bias: bool = False

    @property
    def nbytes(self) -> int:
        """Bytes of the event tape of this layer (input and output events)."""
        return self.inputs.nbytes + self.spikes.nbytes


@dataclass
class Kept:
    """Membranes kept for the backward: compressed rows (``ptr``, ``idx``, ``m``), or
    every membrane (``dense``: ``m`` is (T * B * N,), ``ptr``/``idx`` unused)."""

    dense: bool
    ptr: np.ndarray
    idx: np.ndarray
    m: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.ptr.nbytes + self.idx.nbytes + self.m.nbytes


class _PerLayer(Sequence):
    """``tape.spikes[i]`` etc.: dense arrays per layer, built on first access."""

    def __init__(self, tape, name):
        self._tape, self._name = tape, name

    def __len__(self):
        return len(self._tape.layers)

    def __getitem__(self, i):
        return self._tape._dense(i, self._name)


@dataclass
class EventTape:
    """Everything the event backward needs; the clock ``Tape``'s fields as views.

    ``layers[i]`` is an ``EventLayerTape`` (event-driven Dense layer) or a dict with
    the clock path's ``input``, ``cache``, ``currents``, ``spikes``, ``membrane``,
    ``theta`` (other layers).
    """

    T: int
    B: int
    dtype: np.dtype
    rebuild: Callable            # (EventLayerTape, T, B) -> dense (I, m, s)
    layers: list = field(default_factory=list)

    # Views made on access, not stored: a stored view would make a reference cycle, and
    # the tape (with its references to the weights) would live until the cyclic garbage
    # collector ran, keeping those weights from being private to ``Network.params``.
    @property
    def spikes(self):
        return _PerLayer(self, "spikes")

    @property
    def membrane(self):
        return _PerLayer(self, "membrane")

    @property
    def currents(self):
        return _PerLayer(self, "currents")

    @property
    def thetas(self):
        return _PerLayer(self, "theta")

    def _dense(self, i, name):
        record = self.layers[i]
        if isinstance(record, dict):
            return record[name]
        if name == "theta":
            return record.theta.reshape(record.out_shape)
        if record.dense is None:
            record.dense = self.rebuild(record, self.T, self.B)
        current, membrane, spikes = record.dense
        return {"currents": current, "membrane": membrane, "spikes": spikes}[name]

    @property
    def parameter_keys(self) -> list:
        """Keys (``Network.params``) of the arrays the event layers' re-runs read."""
        keys = []
        for i, record in enumerate(self.layers):
            if isinstance(record, EventLayerTape):
                keys.append(f"{i}.weight")
                if record.has_bias:
                    keys.append(f"{i}.bias")
        return keys


def detach_parameters(tape):
    """Drop the tape's references to parameter arrays (a lazy ``Record`` keeps the
    tape: while it references a weight, that weight is not private to
    ``Network.params`` and gets its full check at every call). Clock-path layers keep
    only their dense I, m, s."""
    for i, record in enumerate(tape.layers):
        if isinstance(record, EventLayerTape):
            record.weight = record.bias = None
        else:
            tape.layers[i] = {key: record[key] for key in ("currents", "spikes", "membrane", "theta")}


def attach_parameters(tape, params):
    """Put the parameter arrays back (``params`` keyed like ``Network.params``), as
    the forward read them."""
    for i, record in enumerate(tape.layers):
        if isinstance(record, EventLayerTape):
            record.weight = np.ascontiguousarray(params[f"{i}.weight"], dtype=tape.dtype)
            if record.has_bias:
                record.bias = np.ascontiguousarray(params[f"{i}.bias"], dtype=tape.dtype)


def spike_events_of(tape, index) -> list:
    """The output spikes of the layers at positions ``index`` as ``SpikeEvents``.

    An event layer of an ``EventTape`` hands over its own spike rows (nothing dense is
    built or re-run); a layer computed densely (a clock ``Tape``, or a clock-path layer
    inside the event engine) gives the nonzeros of its spike array.
    """
    out = []
    for i in index:
        record = tape.layers[i] if isinstance(tape, EventTape) else None
        if isinstance(record, EventLayerTape):
            out.append(record.spikes)
        else:
            spikes = record["spikes"] if isinstance(record, dict) else tape.spikes[i]
            out.append(SpikeEvents.from_dense(spikes))
    return out
