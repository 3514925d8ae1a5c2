"""Peak memory of reading a large N-MNIST-format event file in chunks.

Writes a synthetic N-MNIST-like ``.bin`` file of ``--size-mb`` megabytes (random events,
5 bytes each) to a temporary directory, then reads it back in a fresh Python process with
``stlsim.data.neuromorphic.iter_nmnist_chunks`` and reports that process's peak resident
memory (``resource.getrusage``, after imports and after reading). The reader's peak should
track ``5 + 13`` bytes x ``--chunk-events`` (raw chunk + decoded chunk), not the file size.

    python benchmarks/io_memory.py --size-mb 1024          # the reported run
    python benchmarks/io_memory.py --size-mb 8             # a quick check

Prints a JSON summary and writes it to ``benchmarks/results/io_memory.json``. The temporary
file is deleted unless ``--keep`` is given.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux


def generate(path: str, size_mb: float, chunk_events: int, seed: int) -> int:
    """Append random N-MNIST records chunk by chunk (bounded memory); return the event count."""
    from stlsim.data.neuromorphic import _encode_nmnist, make_events

    rng = np.random.default_rng(seed)
    total = int(size_mb * 1024 * 1024) // 5
    written = 0
    with open(path, "wb") as handle:
        while written < total:
            n = min(chunk_events, total - written)
            events = make_events(np.sort(rng.integers(0, 1 << 23, n)), rng.integers(0, 34, n),
                                 rng.integers(0, 34, n), rng.integers(0, 2, n))
            handle.write(_encode_nmnist(events).tobytes())
            written += n
    return written


def read_all(path: str, chunk_events: int) -> dict:
    """Stream the file, accumulate per-pixel counts, time it; report peak RSS."""
    from stlsim.data.neuromorphic import iter_nmnist_chunks

    baseline = peak_rss_mb()
    counts = np.zeros((2, 34, 34), dtype=np.int64)
    n_events, n_chunks = 0, 0
    start = time.perf_counter()
    for chunk in iter_nmnist_chunks(path, chunk_events):
        counts += np.bincount((chunk["p"].astype(np.int64) * 34 + chunk["y"]) * 34 + chunk["x"],
                              minlength=2 * 34 * 34).reshape(2, 34, 34)
        n_events += chunk.size
        n_chunks += 1
    seconds = time.perf_counter() - start
    return {"events_read": n_events, "chunks": n_chunks, "counted": int(counts.sum()),
            "read_seconds": round(seconds, 3),
            "read_mb_per_s": round(os.path.getsize(path) / 2**20 / max(seconds, 1e-9), 1),
            "peak_rss_mb_after_imports": round(baseline, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=64.0, help="file size in MiB (1024 = 1 GiB)")
    parser.add_argument("--chunk-events", type=int, default=1 << 20, help="events per read chunk")
    parser.add_argument("--dir", default=None, help="directory for the temporary file")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "io_memory.json"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--_generate", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._generate:  # child process: generation memory never counts against the reader
        print(generate(args._generate, args.size_mb, args.chunk_events, args.seed))
        return {}

    workdir = tempfile.mkdtemp(prefix="stlsim_io_memory_", dir=args.dir)
    path = os.path.join(workdir, "large_nmnist.bin")
    try:
        start = time.perf_counter()
        child = subprocess.run([sys.executable, os.path.abspath(__file__), "--_generate", path,
                                "--size-mb", str(args.size_mb), "--chunk-events",
                                str(args.chunk_events), "--seed", str(args.seed)],
                               capture_output=True, text=True, check=True)
        n_events = int(child.stdout.strip().splitlines()[-1])
        generate_seconds = time.perf_counter() - start
        file_bytes = os.path.getsize(path)
        reader = read_all(path, args.chunk_events)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    import platform

    import stlsim

    result = {
        "benchmark": "io_memory",
        "format": "N-MNIST .bin (synthetic random events)",
        "file_mb": round(file_bytes / 2**20, 1),
        "events_in_file": n_events,
        "chunk_events": args.chunk_events,
        "generate_seconds": round(generate_seconds, 2),
        **reader,
        "reader_extra_mb": round(reader["peak_rss_mb"] - reader["peak_rss_mb_after_imports"], 1),
        # What a whole-file read_nmnist would hold at once: raw bytes + decoded events.
        "whole_file_read_estimate_mb": round((file_bytes + n_events * 13) / 2**20, 1),
        "stlsim_version": stlsim.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "kept_file": path if args.keep else None,
    }
    if reader["events_read"] != n_events or reader["counted"] != n_events:
        raise SystemExit(f"reader saw {reader['events_read']} events, file has {n_events}")
    from stlsim._io import atomic_path
    with atomic_path(args.out) as tmp, open(tmp, "w") as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
