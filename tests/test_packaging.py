"""What a new user meets first: the package metadata, the version, the licence, the sdist,
the README's commands and the script that writes the README's results block."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import stlsim

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")


def _pyproject():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _readme_results():
    spec = importlib.util.spec_from_file_location("readme_results", ROOT / "tools" / "readme_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_version_has_one_source():
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "stlsim.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", stlsim.__version__)
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: {re.escape(stlsim.__version__)}\b", citation, re.M)
    assert f"## [{stlsim.__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_licence_authors_and_dependencies():
    project = _pyproject()["project"]
    assert project["license"].split()[0] == "MIT"
    for path in project["license-files"]:
        assert (ROOT / path).is_file(), path
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert project["authors"] == [{"name": "stlsim developers"}]
    assert any(c.startswith("Programming Language :: Python :: 3.10") for c in project["classifiers"])
    assert 'tomli>=1.1; python_version < "3.11"' in project["dependencies"]
    requires = _pyproject()["build-system"]["requires"]
    assert requires == ["setuptools>=77"]                 # 77: SPDX licence expressions (PEP 639)


def test_the_citation_prefers_the_paper():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    paper = cff["preferred-citation"]
    assert paper["title"] == "A Synapse-Threshold Synergistic Learning Approach for Spiking Neural Networks"
    assert paper["journal"] == "IEEE Transactions on Cognitive and Developmental Systems"
    assert [a["family-names"] for a in paper["authors"]][:1] == ["Sun"]
    assert paper["doi"] == "10.1109/TCDS.2023.3278712"


def test_the_readme_commands_install_every_peer_the_tests_check():
    """The README's second command installs the test extra and requirements/peers.txt: together
    every module the tests importorskip, so that only the GPU, -m slow and user data skip."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[2] == "```bash"
    assert lines[3].startswith('python3 -m pip install -e ".[sweep]" && stlsim compare')
    test_command = lines[4]
    assert test_command.startswith('python3 -m pip install -e ".[test,cuda]" && '
                                   "python3 -m pip install --no-deps -r requirements/peers.txt && "
                                   "python3 -m pytest tests -q")
    peers = [line.split("#")[0].strip() for line in (ROOT / "requirements" / "peers.txt").read_text().splitlines()]
    peers = [p for p in peers if p]
    assert peers and all(re.fullmatch(r"[a-z]+==[\d.]+", p) for p in peers), peers
    project = _pyproject()["project"]
    provided = {re.split(r"[=<>\[ ;]", r)[0].lower()
                for r in project["dependencies"] + project["optional-dependencies"]["test"] + peers}
    if "dask" in provided:
        provided.add("distributed")                          # dask[distributed]
    skipped_on = set()
    for path in (ROOT / "tests").glob("*.py"):
        skipped_on |= {m.split(".")[0] for m in re.findall(r'importorskip\("([\w.]+)"\)', path.read_text())}
    skipped_on -= {"benchmarks", "yaml", "tomllib", "tomli", "build"}   # the checkout itself; this file's own
    missing = skipped_on - provided
    assert not missing, f"tests skip without {sorted(missing)}, which the README's test command does not install"
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test,cuda]"' in ci and "--no-deps -r requirements/peers.txt" in ci
    assert "ruff check" in ci and "mkdocs build --strict" in ci


def test_ruff_is_pinned_in_one_version():
    pins = set(re.findall(r"ruff==([\d.]+)", (ROOT / "pyproject.toml").read_text()))
    pins |= set(re.findall(r"ruff==([\d.]+)", (ROOT / ".pre-commit-config.yaml").read_text()))
    pins |= set(re.findall(r"ruff==([\d.]+)", (ROOT / ".ci" / "run").read_text()))
    assert len(pins) == 1, pins
    assert _pyproject()["tool"]["ruff"]["lint"]["select"]


def test_the_sdist_carries_what_the_tests_read(tmp_path):
    """Built here (setuptools, no isolation): the tests and every file outside the package that
    they import, run or read are in the sdist; the bulky committed results are not."""
    pytest.importorskip("build")
    command = [sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(tmp_path), str(ROOT)]
    result = subprocess.run(command,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (sdist,) = tmp_path.glob("stlsim-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in ("LICENSE", "CITATION.cff", "CHANGELOG.md", "requirements/peers.txt", "tests/conftest.py",
                   "tests/test_vs_torch.py", "validation/compare_torch.py", "validation/references/jax_model.py",
                   "validation/cuda_parity.py", "validation/event_parity.py",
                   "validation/results/sweep_digits/table.csv", "benchmarks/__main__.py",
                   "benchmarks/event_scaling.py", "examples/step_through.py", "tools/readme_results.py",
                   "docs/tutorials/01_lif_neuron.py",
                   "docs/howto/own_data.md", "docs/index.md", "stlsim/data/bundled/digits.csv.gz"):
        assert needed in names, needed
    assert not any(n.startswith(("validation/results/claims", "benchmarks/results/", "docs/img/")) for n in names)
    assert not any("__pycache__" in n for n in names)


def test_readme_results_reads_the_table_and_replaces_only_its_block():
    rr = _readme_results()
    stdout = ("stlsim compare: digits (1347 train / 450 test), ... -> runs/compare-digits\n"
              "STL seed 0 epoch 1/2: train loss 0.1 | 1.0s\n\n"
              "mode | test accuracy\n-----|---\nSTL  | 0.9 +- 0.01\nSL   | 0.8 +- 0.02\n\n"
              "results: runs/compare-digits/results.json\n")
    first, table = rr.result_table(stdout)
    assert first == "stlsim compare: digits (1347 train / 450 test), ..."
    assert table == "mode | test accuracy\n-----|---\nSTL  | 0.9 +- 0.01\nSL   | 0.8 +- 0.02"
    block = rr.render_block(first, table, 75.2, [], 0.5)
    assert "1 min 15 s wall" in block and "`stlsim compare`" in block and table in block
    text = "intro\n" + rr.BEGIN + "\nold numbers\n" + rr.END + "\noutro\n"
    assert rr.replace_block(text, block) == "intro\n" + block + "\noutro\n"
    with pytest.raises(SystemExit, match="exactly one block"):
        rr.replace_block("no markers here", block)
    with pytest.raises(SystemExit, match="no result table"):
        rr.result_table("stlsim compare: nothing\n")
    readme = (ROOT / "README.md").read_text()
    assert readme.count(rr.BEGIN) == 1 and readme.count(rr.END) == 1


def test_readme_results_on_a_tiny_run(tmp_path):
    """The script end to end on a copy of the README, with a run small enough for the tests."""
    rr = _readme_results()
    copy = tmp_path / "README.md"
    copy.write_text((ROOT / "README.md").read_text())
    copy.chmod(0o644)
    args = ["--epochs", "1", "--seeds", "1", "--modes", "stl,sl", "--train-subset", "60", "--test-subset", "30",
            "--hidden", "16", "--max-workers", "1"]
    assert rr.main(["--readme", str(copy), "--", *args]) == 0
    text = copy.read_text()
    block = text[text.index(rr.BEGIN):text.index(rr.END)]
    assert "`stlsim compare " + " ".join(args) + "`" in block
    assert re.search(r"^STL +\| 0\.\d{4}", block, re.M) and re.search(r"^SL +\| 0\.\d{4}", block, re.M)
    assert "0.9437" not in block                              # the old numbers are gone
    original = (ROOT / "README.md").read_text()
    assert text.split(rr.BEGIN)[0] == original.split(rr.BEGIN)[0]          # nothing else changed
    assert text.split(rr.END)[1] == original.split(rr.END)[1]
    assert copy.stat().st_mode & 0o777 == 0o644
