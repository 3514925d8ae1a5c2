"""Sweeps: a grid over the options of ``stlsim train``, x seeds x modes, run on Dask or serially.

``import stlsim.experiment.sweep`` needs numpy only; dask.distributed (the ``sweep`` extra) is imported
when a sweep runs on it, matplotlib when ``stlsim sweep-report`` draws.

* ``parse_grid_text``, ``load_grid_file``, ``make_grid``, ``expand``, ``task_id``: the grid
  and its tasks (``grid.py``);
* ``run_sweep``, ``run_task``: the runner (``runner.py``): serial, an embedded
  ``LocalCluster`` or any Dask scheduler; resumable, failures recorded;
* ``read_table``: the tidy results table (``table.py`` lists its columns);
* ``paired_differences``, ``write_sweep_report``: ``stlsim sweep-report DIR [DIR ...]`` (``report.py``:
  paired t-test p, Benjamini-Hochberg q and Holm p per cell; several sweeps de-duplicated);
* ``expand_tuned``, ``write_tuned``: per-arm tuning on a validation split, ``--tune`` (``tune.py``).

See docs/sweep.md.
"""
from .grid import (
           GridSpec,
           Task,
           expand,
           load_grid_file,
           make_grid,
           parse_grid_text,
           task_id,
)
from .runner import run_sweep, run_task
from .table import read_table

__all__ = ["GridSpec", "Task", "expand", "load_grid_file", "make_grid", "parse_grid_text", "task_id",
           "run_sweep", "run_task", "read_table"]
