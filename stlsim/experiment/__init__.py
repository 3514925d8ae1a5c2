"""The applications as a library: a run is a value (``RunSpec``), jobs run through one executor.

No argparse and no ``sys.argv`` here: ``stlsim.cli`` parses text into a ``RunSpec`` and calls
these; a script or a notebook calls them directly.

* ``spec``: the option table (``OPTIONS``), ``RunSpec`` / ``DataSpec``, the data sets' defaults;
* ``executor``: serial, an embedded Dask ``LocalCluster`` or a named scheduler, with one
  worker-count, thread and interrupt policy;
* ``compare``: STL, SL, TL (and the ANN) side by side (``stlsim compare``); ``report``: the
  report of a compare run;
* ``sweep``: grids of runs x seeds x modes, their tables, reports and noise robustness.

``import stlsim.experiment`` loads the option table only; the rest is imported on use.
"""
from .spec import MODES, OPTIONS, DataSpec, RunSpec, dataset_defaults

__all__ = ["MODES", "OPTIONS", "DataSpec", "RunSpec", "dataset_defaults"]
