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
from typing import Callable

import numpy as np

from ..spike_events import SpikeEvents

__all__ = ["EventLayerTape", "Kept", "EventTape", "spike_events_of"]


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

    def __post_init__(self):
        self.spikes = _PerLayer(self, "spikes")
        self.membrane = _PerLayer(self, "membrane")
        self.currents = _PerLayer(self, "currents")
        self.thetas = _PerLayer(self, "theta")

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
