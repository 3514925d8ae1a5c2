"""Every tutorial of docs/tutorials/ executes top to bottom without a failing cell.

The tutorials are jupytext percent scripts. With the ``docs`` extra installed (jupytext,
nbclient, ipykernel) each runs as a notebook in a fresh kernel, the way the site build
executes it; without it, as a plain script in a subprocess. Either way a cell that raises
(including the tutorials' own asserts) fails the test. The site build (``mkdocs build
--strict``) executes them once more.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parent.parent / "docs" / "tutorials").glob("[0-9][0-9]_*.py"))
TIMEOUT_S = 300        # per tutorial; each takes well under a minute on 2 cores
# Tutorials that run a peer framework (CI installs them; elsewhere they skip).
NEEDS = {"06_check_a_framework.py": ("torch", "snntorch", "spikingjelly")}


def _has_notebook_tools() -> bool:
    try:
        import jupytext  # noqa: F401
        import nbclient  # noqa: F401
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        return False
    return "python3" in KernelSpecManager().find_kernel_specs()


def test_the_tutorials_are_found():
    names = [path.name for path in TUTORIALS]
    assert len(names) >= 5, names
    assert names[:5] == ["01_lif_neuron.py", "02_surrogates.py", "03_bptt_by_hand.py",
                         "04_thresholds.py", "05_event_vs_clock.py"]


@pytest.mark.parametrize("path", TUTORIALS, ids=[path.stem for path in TUTORIALS])
def test_tutorial_executes(path, tmp_path):
    for module in NEEDS.get(path.name, ()):
        pytest.importorskip(module)
    env = dict(os.environ, MPLBACKEND="Agg")
    if _has_notebook_tools():
        import jupytext
        import nbclient

        notebook = jupytext.read(path)
        n_code = sum(cell.cell_type == "code" for cell in notebook.cells)
        assert n_code >= 3, f"{path.name}: only {n_code} code cells; is it in the percent format?"
        client = nbclient.NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3",
                                         allow_errors=False,
                                         resources={"metadata": {"path": str(tmp_path)}})
        client.execute()                       # raises CellExecutionError on a failing cell
        errors = [out for cell in notebook.cells for out in cell.get("outputs", [])
                  if out.get("output_type") == "error"]
        assert not errors
        figures = sum("image/png" in out.get("data", {}) for cell in notebook.cells
                      for out in cell.get("outputs", []))
        assert figures >= 1, f"{path.name} drew no figure"
    else:
        result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        assert result.returncode == 0, f"{path.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("page", ["index.md", "howto/compare.md", "howto/own_data.md",
                                  "howto/check_gradient.md", "howto/check_framework.md"])
def test_page_code_runs(page, tmp_path, monkeypatch):
    """The Python blocks of a docs page run, in order, in one namespace (as a reader would)."""
    import re
    if page == "howto/check_framework.md":
        for module in ("torch", "snntorch", "spikingjelly", "norse"):
            pytest.importorskip(module)

    text = (Path(__file__).resolve().parent.parent / "docs" / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks, f"no python block in {page}"
    monkeypatch.chdir(tmp_path)                 # own_data.md writes mine.npz
    namespace = {}
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)  # noqa: S102 - running the page is the test
