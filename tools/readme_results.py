"""Run the default ``stlsim compare`` and write what it printed into the README.

The README's results block (between the two ``readme_results`` markers of README.md) is
never edited by hand: this script runs ``python3 -m stlsim compare`` in a fresh output
folder, measures its wall time, and replaces the block with the run's own first line and
result table, verbatim, plus where and how it ran. It also copies the run's training-curve
figure to ``docs/img/compare_digits_curves.png``, the figure the README shows.

    python3 tools/readme_results.py                       # the default run -> README.md
    python3 tools/readme_results.py -- --epochs 2 --seeds 1 --train-subset 200
                                                          # a quick check: prints the block only

Arguments after ``--`` go to ``stlsim compare`` unchanged. A run with any such argument is
not the README's default run, so its block is printed and nothing is written unless
``--readme PATH`` names a file to write (the tests do this on a copy).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- readme_results: begin. Written by tools/readme_results.py from a run; do not edit by hand. -->"
END = "<!-- readme_results: end -->"
FIGURE = Path("docs") / "img" / "compare_digits_curves.png"


def run_compare(compare_args: list, out_dir: str) -> tuple:
    """Run ``stlsim compare`` (this interpreter, this checkout first on the path); return
    its stdout and wall time in seconds. Its progress lines stream to our stderr."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "stlsim", "compare", *compare_args, "--out", out_dir]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - started
    sys.stderr.write(proc.stdout)
    if proc.returncode != 0:
        raise SystemExit(f"readme_results: `{' '.join(cmd)}` exited with {proc.returncode}; README left as it was.")
    return proc.stdout, wall


def result_table(stdout: str) -> tuple:
    """The run's first line (what it ran) and its table: from the ``mode |`` header to the
    first blank line after it."""
    lines = stdout.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("mode |")]
    if not heads or not lines:
        raise SystemExit("readme_results: no result table (a line starting 'mode |') in the output of "
                         "stlsim compare; README left as it was.")
    start = heads[-1]
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    first = lines[0].split(" -> ")[0].strip()             # without the (temporary) output folder
    return first, "\n".join(lines[start:end])


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"commit {out}" + (" with uncommitted changes" if dirty else "")


def render_block(first_line: str, table: str, wall: float, compare_args: list, load: float) -> str:
    """The README's block: how the run was made, then its output verbatim."""
    command = " ".join(["stlsim compare", *compare_args])
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    cores = os.cpu_count() or 1
    return "\n".join([
        BEGIN,
        f"What `{command}` printed ({now}, {_commit()}, Python {platform.python_version()}; "
        f"{_duration(wall)} wall for the whole command, on {cores} cores with load average "
        f"{load:.1f} at the start):",
        "",
        "```",
        first_line,
        "",
        table,
        "```",
        END,
    ])


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the markers (markers included) replaced by ``block``."""
    pattern = re.compile(re.escape(BEGIN.split(" Written")[0]) + r".*?" + re.escape(END), re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise SystemExit("readme_results: the README must hold exactly one block between "
                         f"'{BEGIN.split(' Written')[0]}' and '{END}'; README left as it was.")
    return pattern.sub(lambda _: block, text)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, keeping the file's mode
    (or the user's umask for a new file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if path.exists():
            mode = path.stat().st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    compare_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=None,
                        help="the file whose block to replace (default: README.md for the default run; "
                             "with compare arguments nothing is written unless this is given)")
    parser.add_argument("--out", default=None, help="the run's folder (default: a temporary one, removed after)")
    opts = parser.parse_args(own)
    readme = opts.readme if opts.readme is not None else (None if compare_args else ROOT / "README.md")
    if readme is not None and not readme.is_file():
        parser.error(f"--readme {readme}: no such file")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out_dir = opts.out or tempfile.mkdtemp(prefix="stlsim-readme-")
    try:
        stdout, wall = run_compare(compare_args, out_dir)
        first_line, table = result_table(stdout)
        block = render_block(first_line, table, wall, compare_args, load)
        if readme is None:
            print(block)
            print("(not written: arguments after -- make this a different run from the README's; "
                  "pass --readme PATH to write it anyway)", file=sys.stderr)
            return 0
        text = readme.read_text(encoding="utf-8")
        write_atomic(readme, replace_block(text, block).encode("utf-8"))
        figure = Path(out_dir) / "curves.png"
        if opts.readme is None and figure.is_file():            # the README's own figure, default run only
            write_atomic(ROOT / FIGURE, figure.read_bytes())
        print(f"wrote the results block of {readme}" + (f" and {FIGURE}" if opts.readme is None else ""))
        return 0
    finally:
        if opts.out is None:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
