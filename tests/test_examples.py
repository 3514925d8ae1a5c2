"""Every script in examples/ runs to the end and saves its figure (style.md item 14).

The glob picks up new examples automatically. Convention: every example accepts
``--out PATH``, ``--no-show`` and ``--quick`` (small sizes); scripts that take longer
than 30 s even with ``--quick`` go in SLOW and run only with ``-m slow``.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
SLOW = set()   # file names of examples that need > 30 s with --quick


def _params():
    for path in EXAMPLES:
        marks = [pytest.mark.slow] if path.name in SLOW else []
        yield pytest.param(path, id=path.stem, marks=marks)


def test_examples_exist():
    assert EXAMPLES, f"no examples found in {EXAMPLES_DIR}"


@pytest.mark.parametrize("script", _params())
def test_example_runs_and_saves_figure(script, tmp_path):
    out = tmp_path / f"{script.stem}.png"
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(script), "--no-show", "--quick", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{script.name} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}")
    assert out.is_file() and out.stat().st_size > 0, f"{script.name} did not save {out}"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{out} is not a PNG"
