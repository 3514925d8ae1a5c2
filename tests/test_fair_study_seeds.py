"""validation/fair_study.py: a sweep's later seeds, run as a sweep of their own, are the same tasks.

The Fashion-MNIST groups of the fair study first ran seeds 0-2 and later seeds 3-4 in a second folder
(a grid file lists the seeds). sweep-report pools the two folders into one cell of 5 seeds only if every
task of the second part has the id it would have had in one sweep of all seeds.
"""
import os
import sys

import pytest

from stlsim import cli

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
from validation import fair_study  # noqa: E402  (the checkout's own script, never skipped)


def _dry_ids(cmd, capsys) -> dict:
    """task id -> (mode, seed) of a `stlsim sweep` command run with --dry-run."""
    assert cmd[1:4] == ["-m", "stlsim", "sweep"]
    assert cli.main([*cmd[3:], "--dry-run"]) == 0
    out = capsys.readouterr().out
    ids = {}
    for line in out.splitlines():
        if line.startswith("  "):
            tid, mode, _, seed = line.split()[:4]
            ids[tid] = (mode, int(seed))
    return ids


@pytest.mark.parametrize("arm", ["none", "decoupled_nothr"])
def test_later_seeds_are_the_tasks_of_one_sweep(arm, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                              # the grid file goes to runs/fair/ here
    monkeypatch.setitem(fair_study.GROUPS, "digits_paper", fair_study.GROUPS["digits_paper"][:2] + (3,)
                        + fair_study.GROUPS["digits_paper"][3:])
    whole = _dry_ids(fair_study.sweep_command("digits_paper", arm), capsys)
    monkeypatch.setitem(fair_study.FIRST_SEEDS, ("digits_paper", arm), 2)
    assert fair_study.parts("digits_paper", arm) == [(arm, [0, 1]), (f"{arm}_s2-2", [2])]
    first = _dry_ids(fair_study.sweep_command("digits_paper", arm, 0), capsys)
    later_cmd = fair_study.sweep_command("digits_paper", arm, 1)
    assert "--grid-file" in later_cmd and later_cmd[-1].endswith(f"{arm}_s2-2")
    later = _dry_ids(later_cmd, capsys)
    assert {s for _, s in first.values()} == {0, 1} and {s for _, s in later.values()} == {2}
    assert len(whole) == 3 * (9 + 3)                      # per seed: STL's 9 (lr, theta_lr), SL's 3 lr
    assert set(first) | set(later) == set(whole) and not set(first) & set(later)
