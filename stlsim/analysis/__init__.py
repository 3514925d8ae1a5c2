"""The paper's analyses: energy, firing-rate stability, noise robustness, joint decision.

``import stlsim.analysis`` needs numpy only; h5py (run records) and the data loaders are
imported when first used. The figures are in ``stlsim.plot.analysis``; the report that
puts measurements, claims and figures together is ``stlsim.experiment.report``.

* ``synaptic_operations(net, x)``, ``energy(net, x, e_ac, e_mac)``: SOPs counted from the
  spikes that actually reach each synaptic layer x fan-out, and E_AC * SOP vs the
  equivalent ANN's E_MAC * MAC (``energy.py`` states every counting convention).
* ``gaussian_noise``, ``salt_and_pepper``, ``spike_noise``, ``event_noise``,
  ``noise_accuracy``, ``noise_curves``: accuracy under corrupted inputs (``noise.py``).
* ``joint_decision``, ``decision_accuracy``: the GJDF (P neurons per class, T steps
  voting) and its ablations: fewer voting neurons, a time window, per-step votes (``gjdf.py``).
* ``load_run``, ``rates_over_training``, ``thresholds_over_training``, ``rate_stability``,
  ``learned_thresholds``, ``propagation_depth``, and ``threshold_dynamics``: an adaptive
  layer's effective threshold theta + beta a_t over one input (``dynamics.py``).
"""
from .dynamics import (SILENT, adaptive_layers, learned_thresholds, load_run, network_from_record,
                       propagation_depth, rate_stability, rates_over_training, threshold_dynamics,
                       thresholds_over_training)
from .energy import (E_AC, E_MAC, INPUT_OPS, Energy, SynapticOps, ann_macs, energy, fan_out,
                     synaptic_operations)
from .gjdf import VOTES, decision_accuracy, decision_rules, joint_decision
from .noise import (DEFAULT_LEVELS, NOISE_KINDS, event_noise, gaussian_noise, noise_accuracy, noise_curves,
                    salt_and_pepper, spike_noise)

__all__ = [
    "synaptic_operations", "energy", "SynapticOps", "Energy", "fan_out", "ann_macs", "E_AC", "E_MAC",
    "INPUT_OPS",
    "gaussian_noise", "salt_and_pepper", "spike_noise", "event_noise", "noise_accuracy", "noise_curves",
    "NOISE_KINDS", "DEFAULT_LEVELS",
    "joint_decision", "decision_accuracy", "decision_rules", "VOTES",
    "load_run", "network_from_record", "rates_over_training", "thresholds_over_training", "rate_stability",
    "learned_thresholds", "propagation_depth", "SILENT", "threshold_dynamics", "adaptive_layers",
]
