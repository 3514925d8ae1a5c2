"""Write the data sets this machine has as stlsim npz files, to run `stlsim compare --dataset X.npz` on.

    python -m validation.npz_defaults.make_data [--out runs/npz]

* ``digits.npz``: the bundled UCI digits (1,347 / 450, 64 pixels);
* ``fashion10k.npz``: the first 10,000 training and 2,000 test images of Fashion-MNIST (needs the
  Debian package dataset-fashion-mnist; skipped without it);
* ``mnist1d.npz``: MNIST-1D (``pip install mnist1d``; generated offline from its default seed 42,
  4,000 / 1,000 sequences of 40 values), min-max scaled into [0, 1] with the training set's range
  (test values clipped), as the npz format asks for values in [0, 1]; skipped without the package.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from stlsim.data import Dataset, load_dataset, save_npz_dataset


def mnist1d() -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()          # seed 42; make_dataset generates, never downloads
    d = make_dataset(args)
    low, high = float(d["x"].min()), float(d["x"].max())
    scale = lambda x: np.clip((x - low) / (high - low), 0.0, 1.0).astype(np.float32)  # noqa: E731
    return Dataset(scale(d["x"]), d["y"], scale(d["x_test"]), d["y_test"], name="mnist1d", n_classes=10,
                   input_shape=(40,), source="mnist1d.data.make_dataset(get_dataset_args()), seed 42, "
                   "min-max scaled to [0, 1] by the training range", license="Apache-2.0 (mnist1d)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/npz")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    sets = {"digits": lambda: load_dataset("digits"),
            "fashion10k": lambda: load_dataset("fashion-mnist").subset(10000, 2000),
            "mnist1d": mnist1d}
    for name, make in sets.items():
        try:
            data = make()
        except (ImportError, FileNotFoundError, OSError) as err:
            print(f"{name}: skipped ({type(err).__name__}: {err})")
            continue
        path = os.path.join(args.out, f"{name}.npz")
        save_npz_dataset(path, data)
        print(f"{path}: {len(data.y_train)} train / {len(data.y_test)} test, input {data.input_shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
