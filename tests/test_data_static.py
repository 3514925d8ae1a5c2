"""Static-image loaders, writers and encoders of stlsim.data, on files written here."""
import gzip
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from stlsim.data import (
    FASHION_MNIST_DIR,
    Dataset,
    direct_encode,
    iterate_minibatches,
    load_cifar10,
    load_dataset,
    load_digits,
    load_idx,
    load_mnist_dir,
    load_npz,
    rate_encode,
    read_cifar10_batch,
    read_idx,
    save_npz_dataset,
    write_idx,
)


# ------------------------------------------------------------------ helpers
def _images(n, rows=28, cols=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, rows, cols), dtype=np.uint8)


def _labels(n, seed=1):
    return np.random.default_rng(seed).integers(0, 10, size=n, dtype=np.uint8)


def _write_raw(path, payload, gz=False):
    if gz:
        payload = gzip.compress(payload)
    with open(path, "wb") as handle:
        handle.write(payload)
    return path


def _mnist_dir(root, n_train=12, n_test=5, gz=True):
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {
        "train-images-idx3-ubyte": _images(n_train, seed=2),
        "train-labels-idx1-ubyte": _labels(n_train, seed=3),
        "t10k-images-idx3-ubyte": _images(n_test, seed=4),
        "t10k-labels-idx1-ubyte": _labels(n_test, seed=5),
    }
    for stem, arr in arrays.items():
        write_idx(root / (stem + ext), arr)
    return arrays


def _cifar_batch(path, n, seed, bytes_keys=True, protocol=2, drop=None, row=3072):
    rng = np.random.default_rng(seed)
    batch = {"batch_label": "training batch", "data": rng.integers(0, 256, (n, row), dtype=np.uint8),
             "labels": [int(v) for v in rng.integers(0, 10, n)],
             "filenames": [f"img_{k}.png" for k in range(n)]}
    if drop:
        del batch[drop]
    if bytes_keys:  # the official files were pickled by Python 2: keys unpickle as bytes
        batch = {k.encode(): (v.encode() if isinstance(v, str) else v) for k, v in batch.items()}
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=protocol)
    return batch


def _cifar_dir(root, n=4):
    root.mkdir(parents=True, exist_ok=True)
    batches = [_cifar_batch(root / f"data_batch_{k}", n, seed=k) for k in range(1, 6)]
    test = _cifar_batch(root / "test_batch", n, seed=9, bytes_keys=False, protocol=4)
    return batches, test


def _small_dataset():
    rng = np.random.default_rng(0)
    return Dataset(x_train=rng.random((6, 2, 3), dtype=np.float32), y_train=np.arange(6) % 3,
                   x_test=rng.random((4, 2, 3), dtype=np.float32), y_test=np.arange(4) % 3,
                   name="toy", n_classes=3, input_shape=(2, 3), source="test", license="CC0")


# ------------------------------------------------------------------ import
def test_import_is_lean_and_separate():
    code = ("import sys, stlsim; assert 'stlsim.data' not in sys.modules, 'stlsim imports data';"
            "import stlsim.data; bad = [m for m in ('h5py', 'torch', 'matplotlib') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ IDX
@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, suffix, dtype):
    arr = (np.arange(2 * 3 * 4) - 7).reshape(2, 3, 4).astype(dtype) if dtype != np.uint8 \
        else np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / f"a.idx{suffix}"
    write_idx(path, arr)
    with open(path, "rb") as handle:
        assert (handle.read(2) == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype).newbyteorder("=") and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_idx_header_is_big_endian_standard(tmp_path):
    write_idx(tmp_path / "img", _images(3, 2, 5))
    raw = (tmp_path / "img").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == (3).to_bytes(4, "big") + (2).to_bytes(4, "big") + (5).to_bytes(4, "big")
    assert len(raw) == 16 + 30


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="`array` of `write_idx` must be .*Got dtype uint16"):
        write_idx(tmp_path / "x", np.zeros(3, np.uint16))
    assert not os.listdir(tmp_path)  # nothing half-written


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_pair(tmp_path, gz):
    images, labels = _images(7), _labels(7)
    ext = ".gz" if gz else ""
    write_idx(tmp_path / f"i{ext}", images)
    write_idx(tmp_path / f"l{ext}", labels)
    x, y = load_idx(tmp_path / f"i{ext}", tmp_path / f"l{ext}")
    assert x.dtype == np.float32 and x.shape == (7, 28, 28) and y.dtype == np.int64
    np.testing.assert_allclose(x * 255, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)


def test_idx_wrong_magic(tmp_path):
    bad = _write_raw(tmp_path / "bad", b"\x01\x02\x08\x03" + bytes(12))
    with pytest.raises(ValueError, match=r"bad` must be an IDX file.*Got magic 0x01020803"):
        read_idx(bad)
    write_idx(tmp_path / "labels", _labels(4))
    write_idx(tmp_path / "images", _images(4))
    with pytest.raises(ValueError, match=r"uint8 images.*Got magic 0x00000801 instead"):
        load_idx(tmp_path / "labels", tmp_path / "labels")  # labels given as images
    with pytest.raises(ValueError, match=r"uint8 labels.*Got magic 0x00000803 instead"):
        load_idx(tmp_path / "images", tmp_path / "images")
    write_idx(tmp_path / "flat", np.zeros((4, 784), np.uint8))  # wrong dims: 0x00000802
    with pytest.raises(ValueError, match=r"flat` must be .*\(N, rows, cols\).*0x00000802"):
        load_idx(tmp_path / "flat", tmp_path / "labels")
    write_idx(tmp_path / "float", np.zeros((4, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"0x00000d03"):
        load_idx(tmp_path / "float", tmp_path / "labels")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_and_too_long(tmp_path, gz):
    header = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (10, 28, 28))
    short = _write_raw(tmp_path / "short", header + bytes(9 * 784), gz)
    with pytest.raises(ValueError, match=r"must be 7856 bytes .*Got 7072 bytes \(truncated\)"):
        read_idx(short)
    long = _write_raw(tmp_path / "long", header + bytes(10 * 784 + 1), gz)
    with pytest.raises(ValueError, match=r"too long"):
        read_idx(long)
    stub = _write_raw(tmp_path / "stub", b"\x00\x00\x08\x03\x00", gz)
    with pytest.raises(ValueError, match=r"16-byte header"):
        read_idx(stub)
    empty = _write_raw(tmp_path / "empty", b"", gz)
    with pytest.raises(ValueError, match=r"Got a 0-byte file"):
        read_idx(empty)


def test_idx_damaged_gzip(tmp_path):
    write_idx(tmp_path / "a.gz", _images(20))
    raw = (tmp_path / "a.gz").read_bytes()
    cut = _write_raw(tmp_path / "cut.gz", raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut.gz` must be a complete gzip file"):
        read_idx(cut)


def test_idx_count_mismatch(tmp_path):
    write_idx(tmp_path / "i", _images(5))
    write_idx(tmp_path / "l", _labels(4))
    with pytest.raises(ValueError, match=r"with 5 labels, one per image.*Got 4 labels instead"):
        load_idx(tmp_path / "i", tmp_path / "l")


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")
    write_idx(tmp_path / "i", _images(2))
    with pytest.raises(FileNotFoundError, match="label file"):
        load_idx(tmp_path / "i", tmp_path / "nope")


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_dir(tmp_path, gz):
    arrays = _mnist_dir(tmp_path / "mnist", gz=gz)
    ds = load_mnist_dir(tmp_path / "mnist")
    assert ds.name == "mnist" and "CC BY-SA" in ds.license and ds.n_classes == 10
    assert ds.input_shape == (28, 28) and ds.x_train.shape == (12, 28, 28)
    assert ds.x_test.shape == (5, 28, 28) and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    np.testing.assert_allclose(ds.x_train * 255, arrays["train-images-idx3-ubyte"], atol=1e-4)
    flat = ds.flat()
    assert flat.x_train.shape == (12, 784) and flat.input_shape == (784,)
    assert np.shares_memory(flat.x_train, ds.x_train)  # a view, not a copy
    _mnist_dir(tmp_path / "my-fashion", gz=gz)
    assert load_mnist_dir(tmp_path / "my-fashion").name == "fashion-mnist"


def test_load_mnist_dir_dotted_names_and_errors(tmp_path):
    root = tmp_path / "m"
    _mnist_dir(root, gz=False)
    os.rename(root / "train-images-idx3-ubyte", root / "train-images.idx3-ubyte")
    assert load_mnist_dir(root).n_train == 12
    os.remove(root / "t10k-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\[.gz\] is missing"):
        load_mnist_dir(root)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist_dir(tmp_path / "absent")
    # test images of another size than the training images
    root2 = tmp_path / "m2"
    _mnist_dir(root2, gz=False)
    write_idx(root2 / "t10k-images-idx3-ubyte", _images(5, 20, 20))
    with pytest.raises(ValueError, match=r"training size \(28, 28\).*Got size \(20, 20\)"):
        load_mnist_dir(root2)
    # labels out of range for n_classes
    write_idx(root2 / "t10k-images-idx3-ubyte", _images(5))
    write_idx(root2 / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 12], np.uint8))
    with pytest.raises(ValueError, match=r"labels in \[0, 9\].*maximum label of 12"):
        load_mnist_dir(root2)


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_DIR),
                    reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist")
    assert (ds.n_train, ds.n_test, ds.input_shape, ds.name) == (60000, 10000, (28, 28), "fashion-mnist")
    assert ds.x_train.dtype == np.float32 and ds.x_train.min() == 0 and ds.x_train.max() == 1
    np.testing.assert_array_equal(np.bincount(ds.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(ds.y_test), np.full(10, 1000))
    assert ds.flat().x_test.shape == (10000, 784)


# ------------------------------------------------------------------ CIFAR-10
def test_load_cifar10(tmp_path):
    batches, test = _cifar_dir(tmp_path / "cifar-10-batches-py")
    for where in (tmp_path / "cifar-10-batches-py", tmp_path):  # folder or its parent
        ds = load_cifar10(where)
        assert ds.input_shape == (3, 32, 32) and ds.x_train.shape == (20, 3, 32, 32)
        assert ds.n_test == 4 and ds.name == "cifar10"
    first = batches[0][b"data"][0]
    # row = R plane, G plane, B plane, each 32x32 row-major
    np.testing.assert_allclose(ds.x_train[0, 1, 2, 3] * 255, first[1024 + 2 * 32 + 3], atol=1e-4)
    np.testing.assert_array_equal(ds.y_train, np.concatenate([b[b"labels"] for b in batches]))
    np.testing.assert_array_equal(ds.y_test, test["labels"])  # str keys work too


def test_cifar_python2_era_module_names(tmp_path):
    # The official batches name numpy.core.multiarray (numpy 1.x); numpy 2 moved it.
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    raw = pickle.dumps({b"data": data, b"labels": [3, 7]}, protocol=2)
    assert b"numpy._core.multiarray\n_reconstruct" in raw
    _write_raw(tmp_path / "old", raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    x, y = read_cifar10_batch(tmp_path / "old")
    np.testing.assert_allclose(x.reshape(2, 3072) * 255, data, atol=1e-4)
    np.testing.assert_array_equal(y, [3, 7])


def test_cifar_broken_batches(tmp_path):
    _cifar_batch(tmp_path / "no_labels", 3, 0, drop="labels")
    with pytest.raises(ValueError, match=r"no_labels` must be .*keys 'data' and 'labels'.*missing \['labels'\]"):
        read_cifar10_batch(tmp_path / "no_labels")
    _cifar_batch(tmp_path / "short_rows", 3, 0, row=3000)
    with pytest.raises(ValueError, match=r"shape \(N, 3072\).*Got shape \(3, 3000\)"):
        read_cifar10_batch(tmp_path / "short_rows")
    with open(tmp_path / "few_labels", "wb") as handle:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8), b"labels": [1, 2]}, handle, protocol=2)
    with pytest.raises(ValueError, match=r"with 3 integer labels"):
        read_cifar10_batch(tmp_path / "few_labels")
    with open(tmp_path / "big_label", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 10]}, handle)
    with pytest.raises(ValueError, match=r"labels in \[0, 9\]"):
        read_cifar10_batch(tmp_path / "big_label")
    with open(tmp_path / "list", "wb") as handle:
        pickle.dump([1, 2], handle)
    with pytest.raises(ValueError, match=r"Got a pickled list"):
        read_cifar10_batch(tmp_path / "list")
    _write_raw(tmp_path / "garbage", b"not a pickle at all")
    with pytest.raises(ValueError, match=r"unreadable pickle"):
        read_cifar10_batch(tmp_path / "garbage")


def test_cifar_refuses_code_in_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "evil", "wb") as handle:
        pickle.dump({b"data": Evil(), b"labels": []}, handle)
    with pytest.raises(ValueError, match=r"Got a reference to (posix|nt|os)\.system"):
        read_cifar10_batch(tmp_path / "evil")


def test_cifar_missing_files(tmp_path):
    _cifar_dir(tmp_path / "c")
    os.remove(tmp_path / "c" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match=r"\['data_batch_3'\] are missing"):
        load_cifar10(tmp_path / "c")


# ------------------------------------------------------------------ npz
def test_npz_round_trip(tmp_path):
    ds = _small_dataset()
    save_npz_dataset(tmp_path / "toy.npz", ds)
    assert os.listdir(tmp_path) == ["toy.npz"]
    back = load_npz(tmp_path / "toy.npz")
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, key), getattr(ds, key))
    assert (back.name, back.n_classes, back.input_shape, back.source, back.license) == \
        ("toy", 3, (2, 3), "test", "CC0")
    with np.load(tmp_path / "toy.npz") as archive:
        assert "stlsim_version" in str(archive["provenance"])
    assert load_dataset(str(tmp_path / "toy.npz")).name == "toy"


def test_npz_uint8_and_defaults(tmp_path):
    x = np.array([[0, 255], [51, 102]], np.uint8)
    np.savez(tmp_path / "u8.npz", x_train=x, y_train=np.array([0, 4]), x_test=x[:1], y_test=np.array([1]))
    ds = load_npz(tmp_path / "u8.npz")
    np.testing.assert_allclose(ds.x_train, [[0, 1], [0.2, 0.4]], rtol=1e-6)
    assert ds.n_classes == 5 and ds.name == "u8" and ds.input_shape == (2,)


@pytest.mark.parametrize("case, message", [
    ("missing", r"with arrays x_train.*missing \['y_test'\]"),
    ("length", r"whose 'y_train' has one label per image, shape \(3,\).*Got shape \(2,\)"),
    ("range", r"whose float 'x_train' lies in \[0, 1\].*Got values in \[0.5, 2.0\]"),
    ("nan", r"whose float 'x_train' lies in \[0, 1\].*nan"),
    ("int16", r"whose 'x_test' is uint8 \(0..255\) or float in \[0, 1\].*Got dtype int16"),
    ("shape", r"whose 'x_test' images have the 'x_train' shape \(2,\).*Got shape \(3,\)"),
    ("float_labels", r"whose 'y_train' holds integer labels.*Got dtype float64"),
    ("n_classes", r"with labels in \[0, 1\] \(its n_classes\).*maximum label of 2"),
])
def test_npz_broken(tmp_path, case, message):
    arrays = dict(x_train=np.full((3, 2), 0.5), y_train=np.array([0, 1, 2]),
                  x_test=np.zeros((1, 2), np.float32), y_test=np.array([0]))
    if case == "missing":
        del arrays["y_test"]
    elif case == "length":
        arrays["y_train"] = np.array([0, 1])
    elif case == "range":
        arrays["x_train"][1, 1] = 2.0
    elif case == "nan":
        arrays["x_train"][1, 1] = np.nan
    elif case == "int16":
        arrays["x_test"] = np.zeros((1, 2), np.int16)
    elif case == "shape":
        arrays["x_test"] = np.zeros((1, 3), np.float32)
    elif case == "float_labels":
        arrays["y_train"] = np.array([0.0, 1.0, 2.0])
    elif case == "n_classes":
        arrays["n_classes"] = np.array(2)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=r"bad.npz` must be an npz " + message):
        load_npz(tmp_path / "bad.npz")


def test_npz_missing_and_unreadable(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "absent.npz")
    _write_raw(tmp_path / "junk.npz", b"junk")
    with pytest.raises(ValueError, match=r"junk.npz` must be an npz archive"):
        load_npz(tmp_path / "junk.npz")


# ------------------------------------------------------------------ Dataset
def test_dataset_validates_and_subsets():
    ds = _small_dataset()
    assert repr(ds) == "Dataset('toy', train=(6, 2, 3), test=(4, 2, 3), n_classes=3)"
    small = ds.subset(2, 1)
    assert (small.n_train, small.n_test) == (2, 1)
    np.testing.assert_array_equal(small.y_train, ds.y_train[:2])
    assert ds.subset().n_train == 6 and ds.subset(n_test=0).n_test == 0
    with pytest.raises(ValueError, match=r"`n_train` of `Dataset.subset` must be an integer in \[0, 6\]"):
        ds.subset(7)
    with pytest.raises(ValueError, match=r"`x_train` of `Dataset` must be finite values in \[0, 1\]"):
        Dataset(np.full((1, 2), 2.0), np.array([0]), np.zeros((1, 2)), np.array([0]), "x", 1, (2,))
    with pytest.raises(ValueError, match=r"`y_test` of `Dataset` must be labels in \[0, 0\]"):
        Dataset(np.zeros((1, 2)), np.array([0]), np.zeros((1, 2)), np.array([3]), "x", 1, (2,))
    with pytest.raises(ValueError, match=r"`x_test` of `Dataset` must be an array of shape \(N, 2\)"):
        Dataset(np.zeros((1, 2)), np.array([0]), np.zeros((1, 3)), np.array([0]), "x", 1, (2,))
    with pytest.raises(AttributeError):
        ds.name = "other"  # frozen


# ------------------------------------------------------------------ digits
def test_digits_shape_range_labels():
    ds = load_digits()
    assert ds.name == "digits" and "CC BY 4.0" in ds.license
    assert ds.n_train + ds.n_test == 1797 and ds.input_shape == (64,)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() == 0 and ds.x_train.max() == 1
    everything = np.concatenate([ds.x_train, ds.x_test]) * 16
    np.testing.assert_array_equal(everything, np.round(everything))  # multiples of 1/16
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]))
    np.testing.assert_array_equal(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    # stratified: each class is ~25 % test, to within rounding
    test_share = np.bincount(ds.y_test, minlength=10) / counts
    assert np.all(np.abs(test_share - 0.25) <= 0.5 / counts.min() + 1e-12)
    assert ds.n_test == sum(int(round(0.25 * c)) for c in counts)


def test_digits_seeded():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)
    def rows(ds):
        return {row.tobytes() for row in np.concatenate([ds.x_train, ds.x_test])}
    assert rows(a) == rows(c)  # same images, split differently
    counts = np.bincount(a.y_train) + np.bincount(a.y_test)
    assert load_digits(test_fraction=0.5).n_test == sum(int(round(0.5 * c)) for c in counts)
    with pytest.raises(ValueError, match=r"`test_fraction` of `load_digits`"):
        load_digits(test_fraction=1.0)


# ------------------------------------------------------------------ load_dataset
def test_load_dataset_specs(tmp_path, monkeypatch):
    assert load_dataset("digits").n_train == 1347
    _mnist_dir(tmp_path / "mn")
    assert load_dataset(f"mnist:{tmp_path / 'mn'}").name == "mnist"
    assert load_dataset(f"fashion-mnist:{tmp_path / 'mn'}").name == "fashion-mnist"
    monkeypatch.delenv("STLSIM_MNIST_DIR", raising=False)
    monkeypatch.delenv("STLSIM_CIFAR10_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"STLSIM_MNIST_DIR=/that/dir"):
        load_dataset("mnist")
    with pytest.raises(FileNotFoundError, match=r"data_batch_1..5.*STLSIM_CIFAR10_DIR"):
        load_dataset("cifar10")
    monkeypatch.setenv("STLSIM_MNIST_DIR", str(tmp_path / "mn"))
    assert load_dataset("mnist").n_test == 5
    _cifar_dir(tmp_path / "cf")
    monkeypatch.setenv("STLSIM_CIFAR10_DIR", str(tmp_path / "cf"))
    assert load_dataset("cifar10").n_train == 20
    with pytest.raises(ValueError, match=r"`spec` of `load_dataset` must be 'digits'"):
        load_dataset("imagenet")
    with pytest.raises(TypeError):
        load_dataset(3)


# ------------------------------------------------------------------ encoders
def test_rate_encode_statistics():
    x = np.array([[0.0, 0.1, 0.5], [0.9, 1.0, 0.25]], np.float32)
    spikes = rate_encode(x, 20000, np.random.default_rng(0))
    assert spikes.shape == (20000, 2, 3) and spikes.dtype == np.float32
    assert set(np.unique(spikes)) <= {0.0, 1.0}
    assert np.all(spikes[:, 0, 0] == 0) and np.all(spikes[:, 1, 1] == 1)  # exact at 0 and 1
    std_err = np.sqrt(x * (1 - x) / 20000)
    assert np.all(np.abs(spikes.mean(axis=0) - x) <= 5 * std_err + 1e-12)


def test_rate_encode_seeding_and_dtype():
    x = np.random.default_rng(3).random((4, 5))
    a = rate_encode(x, 8, np.random.default_rng(7))
    b = rate_encode(x, 8, np.random.default_rng(7), dtype=np.float64)
    c = rate_encode(x, 8, np.random.default_rng(8))
    assert b.dtype == np.float64
    np.testing.assert_array_equal(a, b)  # same stream regardless of the output dtype
    assert not np.array_equal(a, c)
    expected = (np.random.default_rng(7).random((8, 4, 5)) < x)  # the documented draw
    np.testing.assert_array_equal(a, expected)


def test_rate_encode_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"`x` of `rate_encode` must be an array of intensities in \[0, 1\]"):
        rate_encode(np.array([0.5, 1.5]), 3, rng)
    with pytest.raises(TypeError, match=r"`rng` of `rate_encode` must be a numpy.random.Generator"):
        rate_encode(np.array([0.5]), 3, 0)
    with pytest.raises(ValueError, match=r"`T` of `rate_encode`"):
        rate_encode(np.array([0.5]), 0, rng)
    with pytest.raises(TypeError, match=r"`dtype` of `rate_encode`"):
        rate_encode(np.array([0.5]), 2, rng, dtype=np.int32)


def test_direct_encode():
    x = np.random.default_rng(0).random((3, 2, 2))
    out = direct_encode(x, 4, dtype=np.float64)
    assert out.shape == (4, 3, 2, 2) and out.dtype == np.float64 and out.flags.writeable
    for t in range(4):
        np.testing.assert_array_equal(out[t], x)
    out[0] = -1.0  # a copy: neither the input nor the other steps change
    assert np.all(x >= 0)
    np.testing.assert_array_equal(out[1], x)
    assert direct_encode(x, 2).dtype == np.float32
    with pytest.raises(ValueError, match=r"`x` of `direct_encode` must be finite"):
        direct_encode(np.array([np.nan]), 2)


# ------------------------------------------------------------------ minibatches
def test_iterate_minibatches():
    batches = list(iterate_minibatches(10, 4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 4, 2] and batches[0].dtype == np.int64
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(10))
    again = list(iterate_minibatches(10, 4, np.random.default_rng(0)))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    assert [len(b) for b in iterate_minibatches(10, 4, np.random.default_rng(0), drop_last=True)] == [4, 4]
    ordered = list(iterate_minibatches(5, 2, None, shuffle=False))
    np.testing.assert_array_equal(np.concatenate(ordered), np.arange(5))
    assert list(iterate_minibatches(0, 3, None, shuffle=False)) == []
    with pytest.raises(TypeError, match=r"`rng` of `iterate_minibatches`"):
        iterate_minibatches(5, 2, None)  # raised at the call, not at the first batch
    with pytest.raises(ValueError, match=r"`batch_size` of `iterate_minibatches`"):
        iterate_minibatches(5, 0, np.random.default_rng(0))


# ------------------------------------------------------------------ labels
_LABEL_CASES = [
    ("ints", np.array([0, 2, 1, 0]), None),
    ("uint8", np.array([0, 2, 1, 0], np.uint8), None),
    ("integral floats", np.array([0.0, 2.0, 1.0, -0.0]), None),
    ("float32 whole numbers", np.array([1.0, 1.0, 0.0, 2.0], np.float32), None),
    ("fractional", np.array([0.0, 1.5, 1.0, 0.0]), (TypeError, r"integer class labels.*Got 1\.5 at index 1")),
    ("NaN", np.array([0.0, np.nan, 1.0, 0.0]), (TypeError, r"integer class labels.*Got nan at index 1")),
    ("infinity", np.array([0.0, 1.0, np.inf, 0.0]), (TypeError, r"Got inf at index 2")),
    ("bools", np.array([True, False, True, False]), (TypeError, r"integer class labels.*Got dtype bool")),
    ("strings", np.array(["0", "1", "2", "0"]), (TypeError, r"Got dtype <U1")),
    ("above range", np.array([0, 3, 1, 0]), (ValueError, r"labels in \[0, 2\]. Got values in \[0, 3\]")),
    ("negative", np.array([0, -1, 1, 0]), (ValueError, r"labels in \[0, 2\]. Got values in \[-1, 1\]")),
    ("float above range", np.array([0.0, 3.0, 1.0, 0.0]), (ValueError, r"Got values in \[0, 3\]")),
    ("wrong shape", np.array([[0, 1], [2, 0]]), (ValueError, r"an array of shape \(4,\). Got shape \(2, 2\)")),
    ("too short", np.array([0, 1, 2]), (ValueError, r"an array of shape \(4,\). Got shape \(3,\)")),
]


def _verdict(call):
    try:
        out = call()
    except (TypeError, ValueError) as err:
        message = str(err)
        return type(err), message[message.index(" must be "):]   # drop the `name` of `owner` prefix
    return "ok", tuple(out.tolist())


@pytest.mark.parametrize("case, labels, expected", _LABEL_CASES, ids=[c[0] for c in _LABEL_CASES])
def test_network_and_dataset_give_one_label_verdict(case, labels, expected):
    import stlsim
    from stlsim._checks import check_labels

    net = stlsim.Network([stlsim.Dense(2, 3)], seed=0)
    x = np.random.default_rng(0).random((3, 4, 2))                     # (T, B, inputs), B = 4

    def from_dataset():
        ds = Dataset(np.zeros((4, 2)), np.zeros(4, np.int64), np.zeros((4, 2)), labels, "toy", 3, (2,))
        return ds.y_test

    def from_network():
        net.loss(x, labels)                                              # raises or accepts
        return check_labels(labels, "y", 4, 3)

    by_dataset, by_network = _verdict(from_dataset), _verdict(from_network)
    assert by_dataset == by_network
    if expected is None:
        assert by_dataset[0] == "ok" and by_dataset[1] == tuple(int(v) for v in labels)
        assert Dataset(np.zeros((4, 2)), labels, np.zeros((4, 2)), labels, "toy", 3, (2,)).y_train.dtype == np.int64
    else:
        exc, pattern = expected
        assert by_dataset[0] is exc
        with pytest.raises(exc, match=pattern):
            from_dataset()
        with pytest.raises(exc, match=pattern):
            net.loss(x, labels)
