"""Neuromorphic file formats, event transforms, the HDF5 cache and the synthetic stand-in.

Every file these tests read is written here, by hand with ``struct`` (known answers)
or by stlsim's writers (round trips).
"""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stlsim.data import events as ev_mod
from stlsim.data.cache import CACHE_SCHEMA_VERSION, open_cache, write_cache
from stlsim.data.events import (crop_time, downsample_events, drop_events, events_to_frames,
                                events_to_sparse, insert_events, jitter_events, units_to_frames)
from stlsim.data.neuromorphic import (EVENT_DTYPE, UNIT_EVENT_DTYPE, iter_nmnist_chunks,
                                      make_events, make_unit_events, read_aedat,
                                      read_gesture_labels, read_nmnist, read_shd, read_trial_list,
                                      split_gesture_recording, write_aedat, write_nmnist, write_shd)
from stlsim.data.synthetic import make_neuromorphic_dataset, saccade_events

h5py = pytest.importorskip("h5py")

HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
PACKET = struct.Struct("<HHIIIIII")


def random_events(rng, n, height=34, width=34, t_max=300_000):
    return make_events(np.sort(rng.integers(0, t_max, n)), rng.integers(0, width, n),
                       rng.integers(0, height, n), rng.integers(0, 2, n))


def polarity_word(x, y, p, valid=1):
    return (x << 17) | (y << 2) | (p << 1) | valid


def packet(event_type, events, overflow=0, size=8, ts_offset=4, capacity=None, number=None,
           valid=None):
    n = len(events)
    body = b"".join(struct.pack("<Ii", word, ts) for word, ts in events)
    return PACKET.pack(event_type, 1, size, ts_offset, overflow, n if capacity is None else capacity,
                       n if number is None else number, n if valid is None else valid) + body


def digit_image():
    image = np.zeros((28, 28))
    image[5:23, 13:16] = 1.0        # a "1" with a serif
    image[5:8, 10:16] = 0.8
    return image


# --------------------------------------------------------------------------- N-MNIST

def test_nmnist_known_answer(tmp_path):
    path = tmp_path / "00002.bin"
    raw = bytes([1, 2]) + (0x800000 | 0x123456).to_bytes(3, "big") \
        + bytes([33, 0]) + (0x7FFFFF).to_bytes(3, "big") \
        + bytes([5, 6]) + (0x000010).to_bytes(3, "big")
    path.write_bytes(raw)
    events = read_nmnist(path)
    assert events.dtype == EVENT_DTYPE and events.size == 3
    assert tuple(events[0]) == (0x123456, 1, 2, 1)
    assert tuple(events[1]) == (0x7FFFFF, 33, 0, 0)
    assert tuple(events[-1]) == (16, 5, 6, 0)
    write_nmnist(tmp_path / "again.bin", events)
    assert (tmp_path / "again.bin").read_bytes() == raw


def test_nmnist_round_trip_and_chunks(tmp_path):
    events = random_events(np.random.default_rng(1), 1001)
    write_nmnist(tmp_path / "a.bin", events)
    np.testing.assert_array_equal(read_nmnist(tmp_path / "a.bin"), events)
    chunks = list(iter_nmnist_chunks(tmp_path / "a.bin", chunk_events=100))
    assert [c.size for c in chunks] == [100] * 10 + [1]
    np.testing.assert_array_equal(np.concatenate(chunks), events)
    write_nmnist(tmp_path / "empty.bin", events[:0])
    assert read_nmnist(tmp_path / "empty.bin").size == 0


def test_nmnist_truncated_names_file(tmp_path):
    path = tmp_path / "broken.bin"
    path.write_bytes(bytes(7))
    with pytest.raises(ValueError, match=r"broken\.bin.*multiple of 5"):
        read_nmnist(path)
    with pytest.raises(ValueError, match=r"broken\.bin"):
        list(iter_nmnist_chunks(path))


def test_nmnist_writer_rejects_out_of_range(tmp_path):
    events = random_events(np.random.default_rng(2), 5)
    events["t"][0] = 1 << 23
    with pytest.raises(ValueError, match=r"events\['t'\].*8388607"):
        write_nmnist(tmp_path / "x.bin", events)
    assert not (tmp_path / "x.bin").exists()


# --------------------------------------------------------------------------- AEDAT 3.1

def test_aedat_known_answer(tmp_path):
    path = tmp_path / "user01_fluorescent.aedat"
    first = [(polarity_word(10, 20, 1), 100), (polarity_word(127, 0, 0), 200)]
    special = [(0xDEAD, 150)]                                  # type 2: skipped
    late = [(polarity_word(3, 4, 1), 5), (polarity_word(9, 9, 1, valid=0), 6)]  # 2nd invalid
    path.write_bytes(HEADER + packet(1, first) + packet(2, special)
                     + packet(1, late, overflow=1, valid=1))
    events = read_aedat(path)
    assert events.size == 3
    assert tuple(events[0]) == (100, 10, 20, 1)
    assert tuple(events[1]) == (200, 127, 0, 0)
    assert tuple(events[-1]) == (5 | (1 << 31), 3, 4, 1)      # overflow composes bit 31


def test_aedat_capacity_larger_than_number(tmp_path):
    # Payload length is capacity * size; only eventNumber events are decoded.
    events = [(polarity_word(1, 1, 1), 7)]
    body = PACKET.pack(1, 1, 8, 4, 0, 2, 1, 1) + struct.pack("<Ii", *events[0]) + bytes(8)
    path = tmp_path / "cap.aedat"
    path.write_bytes(HEADER + body + packet(1, [(polarity_word(2, 2, 0), 9)]))
    out = read_aedat(path)
    assert out["t"].tolist() == [7, 9] and out["x"].tolist() == [1, 2]


def test_aedat_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    events = random_events(rng, 500, 128, 128, t_max=1_000_000)
    events["t"][300:] += (1 << 31) + 5                        # crosses an overflow
    write_aedat(tmp_path / "r.aedat", events, packet_events=64)
    np.testing.assert_array_equal(read_aedat(tmp_path / "r.aedat"), events)
    write_aedat(tmp_path / "e.aedat", events[:0])
    assert read_aedat(tmp_path / "e.aedat").size == 0


@pytest.mark.parametrize("body, message", [
    (b"#!AER-DAT2.0\r\n#!END-HEADER\r\n", "does not start with"),
    (b"#!AER-DAT3.1\r\n#Format: RAW\r\n", "not closed"),
    (b"#!AER-DAT3.1\r\nbinary\r\n#!END-HEADER\r\n", "not closed"),
    (HEADER + bytes(10), "truncated AEDAT packet header"),
    (HEADER + PACKET.pack(1, 1, 8, 4, 0, 3, 3, 3) + bytes(16), "overrun the file"),
    (HEADER + PACKET.pack(1, 1, 4, 4, 0, 2, 2, 2) + bytes(8), "eventSize 8"),
    (HEADER + PACKET.pack(1, 1, 8, 4, 0, 1, 2, 2) + bytes(16), "inconsistent counts"),
    (HEADER + PACKET.pack(2, 1, 0, 0, 0, 5, 5, 5), "eventSize 0"),
    (HEADER + packet(1, [(polarity_word(1, 1, 1), -5)]), "negative event timestamp"),
])
def test_aedat_broken_files(tmp_path, body, message):
    path = tmp_path / "broken.aedat"
    path.write_bytes(body)
    with pytest.raises(ValueError, match=rf"broken\.aedat.*{message}"):
        read_aedat(path)


def test_gesture_labels_split_and_trials(tmp_path):
    csv = tmp_path / "user01_fluorescent_labels.csv"
    csv.write_text("class,startTime_usec,endTime_usec\n1,100,200\n11,300,450\n\n")
    classes, start, end = read_gesture_labels(csv)
    assert classes.tolist() == [1, 11] and start.tolist() == [100, 300] and end.tolist() == [200, 450]
    events = make_events([50, 100, 199, 200, 300, 449, 450], [0] * 7, [0] * 7, [1] * 7)
    pieces = split_gesture_recording(events, (classes, start, end))
    assert [(p["t"].tolist(), c) for p, c in pieces] == [([100, 199], 0), ([300, 449], 10)]
    trials = tmp_path / "trials_to_train.txt"
    trials.write_text("user01_fluorescent.aedat\n user02_lab.aedat \n\n")
    assert read_trial_list(trials) == ["user01_fluorescent.aedat", "user02_lab.aedat"]


@pytest.mark.parametrize("text, message", [
    ("label,start,end\n1,0,1\n", "first line"),
    ("class,startTime_usec,endTime_usec\n12,0,1\n", "class 12"),
    ("class,startTime_usec,endTime_usec\n1,0\n", "malformed"),
    ("class,startTime_usec,endTime_usec\n1,5,4\n", "ending before"),
])
def test_gesture_labels_broken(tmp_path, text, message):
    path = tmp_path / "bad_labels.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"bad_labels\.csv.*{message}"):
        read_gesture_labels(path)


# --------------------------------------------------------------------------- SHD

def write_raw_shd(path, times, units, labels):
    vf, vi = h5py.vlen_dtype(np.float16), h5py.vlen_dtype(np.uint16)
    with h5py.File(path, "w") as f:
        ds_t = f.create_dataset("spikes/times", (len(times),), dtype=vf)
        ds_u = f.create_dataset("spikes/units", (len(units),), dtype=vi)
        for i, t in enumerate(times):
            ds_t[i] = np.asarray(t, dtype=np.float16)
        for i, u in enumerate(units):
            ds_u[i] = np.asarray(u, dtype=np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))


def test_shd_known_answer(tmp_path):
    path = tmp_path / "shd_train.h5"
    # 1.2 s as float16 is 1.2001953125 s; times * 1e6 in float16 would be inf.
    write_raw_shd(path, [[0.0, 0.5, 1.2], [0.25]], [[0, 699, 7], [3]], [19, 0])
    events, labels = read_shd(path)
    assert labels.tolist() == [19, 0] and labels.dtype == np.int64
    assert events[0].dtype == UNIT_EVENT_DTYPE
    assert events[0]["t"].tolist() == [0, 500_000, 1_200_195]
    assert events[0]["unit"].tolist() == [0, 699, 7]
    assert events[1]["t"].tolist() == [250_000]


def test_shd_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    events = [make_unit_events(np.sort(rng.integers(0, 1_300_000, n)), rng.integers(0, 700, n))
              for n in (0, 5, 300)]
    labels = np.array([0, 19, 7])
    write_shd(tmp_path / "s.h5", events, labels, speaker=np.array([1, 2, 3]))
    back, back_labels = read_shd(tmp_path / "s.h5")
    np.testing.assert_array_equal(back_labels, labels)
    for original, read in zip(events, back):
        # float16 seconds: the only loss is float16 rounding of t / 1e6.
        expected = np.rint((original["t"] / 1e6).astype(np.float16).astype(np.float64) * 1e6)
        np.testing.assert_array_equal(read["t"], expected.astype(np.int64))
        np.testing.assert_array_equal(read["unit"], original["unit"])
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["extra/speaker"][()].tolist() == [1, 2, 3]
        assert f["spikes/times"].dtype.metadata["vlen"] == np.float16
        assert "stlsim_version" in f.attrs


def test_shd_broken_files(tmp_path):
    (tmp_path / "not_hdf5.h5").write_bytes(b"hello")
    path = tmp_path / "no_labels.h5"
    write_raw_shd(path, [[0.1]], [[1]], [0])
    with h5py.File(path, "a") as f:
        del f["labels"]
    path = tmp_path / "ragged.h5"
    write_raw_shd(path, [[0.1, 0.2]], [[1]], [0])
    path = tmp_path / "count.h5"
    write_raw_shd(path, [[0.1], [0.2]], [[1], [2]], [0])
    path = tmp_path / "float_units.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", (1,), dtype=h5py.vlen_dtype(np.float16))[0] = [0.1]
        f.create_dataset("spikes/units", (1,), dtype=h5py.vlen_dtype(np.float32))[0] = [1.0]
        f.create_dataset("labels", data=[0])
    messages = {"not_hdf5.h5": "not a readable HDF5", "no_labels.h5": "/labels' is missing",
                "ragged.h5": "2 times but 1 units", "count.h5": "mismatched sample counts",
                "float_units.h5": "1-D numeric array"}
    for name, message in messages.items():
        with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}.*{message}"):
            read_shd(tmp_path / name)


def test_modules_import_without_h5py():
    code = ("import sys; import stlsim.data.neuromorphic, stlsim.data.cache, stlsim.data.events, "
            "stlsim.data.synthetic; print('h5py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- fuzzing

FUZZ = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def read_bytes_with(reader, data, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fuzz" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        try:
            return reader(path)
        except ValueError as err:
            assert "fuzz" + suffix in str(err)
            return None


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_read_nmnist(data):
    events = read_bytes_with(read_nmnist, data, ".bin")
    assert (events is None) == (len(data) % 5 != 0)
    if events is not None:
        assert events.size == len(data) // 5


@st.composite
def aedat_packet(draw):
    if draw(st.booleans()):  # a well-formed polarity packet, to reach the decoder
        n = draw(st.integers(0, 5))
        words = [struct.pack("<Ii", draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**31 - 1)))
                 for _ in range(n)]
        return PACKET.pack(1, 1, 8, 4, draw(st.integers(0, 3)), n, n, n) + b"".join(words)
    event_type = draw(st.sampled_from([0, 1, 1, 2]))
    size, ts_offset = draw(st.sampled_from([(8, 4), (8, 4), (0, 0), (4, 4), (16, 4), (8, 0)]))
    capacity = draw(st.integers(0, 5))
    number = draw(st.sampled_from([capacity, capacity, draw(st.integers(0, 6))]))
    valid = draw(st.sampled_from([number, draw(st.integers(0, 6))]))
    style = draw(st.sampled_from(["events", "bytes", "any"]))  # mostly well-formed payloads
    if style == "events" and size == 8:
        payload = b"".join(struct.pack("<Ii", draw(st.integers(0, 2**32 - 1)),
                                       draw(st.integers(0, 2**31 - 1))) for _ in range(capacity))
    elif style != "any":
        payload = draw(st.binary(min_size=size * capacity, max_size=size * capacity))
    else:
        payload = draw(st.binary(max_size=48))
    return PACKET.pack(event_type, 1, size, ts_offset, draw(st.integers(0, 3)), capacity,
                       number, valid) + payload


@st.composite
def aedat_bytes(draw):
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return HEADER + draw(st.binary(max_size=200))
    return HEADER + b"".join(draw(st.lists(aedat_packet(), max_size=4)))


@FUZZ
@given(aedat_bytes())
def test_fuzz_read_aedat(data):
    events = read_bytes_with(read_aedat, data, ".aedat")
    if events is not None:
        assert events.dtype == EVENT_DTYPE and np.all(events["t"] >= 0)


KINDS = ["missing", "vlen_f16", "vlen_int", "plain_int", "plain_float", "2d", "string"]


@st.composite
def shd_layout(draw):
    """Dataset name -> (kind, ragged rows): mostly the right kinds, with gaps and mismatches."""
    n_samples = draw(st.integers(0, 3))
    layout = {}
    for name, right in (("spikes/times", "vlen_f16"), ("spikes/units", "vlen_int"),
                        ("labels", "plain_int")):
        kind = draw(st.sampled_from([right] * 6 + KINDS))
        n = draw(st.sampled_from([n_samples] * 4 + [0, 1, 2, 3]))
        layout[name] = (kind, [draw(st.lists(st.integers(-2, 1000), min_size=0, max_size=4))
                               for _ in range(n)])
    return layout


def write_layout(path, layout):
    with h5py.File(path, "w") as f:
        for name, (kind, content) in layout.items():
            if kind == "missing":
                continue
            if kind in ("vlen_f16", "vlen_int"):
                base = np.float16 if kind == "vlen_f16" else np.int32
                ds = f.create_dataset(name, (len(content),), dtype=h5py.vlen_dtype(base))
                for i, row in enumerate(content):
                    row = np.asarray(row, dtype=np.float64)
                    ds[i] = (row / 1000 if base == np.float16 else row).astype(base)
            elif kind == "plain_int":
                f.create_dataset(name, data=np.array([len(r) for r in content], dtype=np.int64))
            elif kind == "plain_float":
                f.create_dataset(name, data=np.array([len(r) for r in content], dtype=np.float32))
            elif kind == "2d":
                f.create_dataset(name, data=np.zeros((len(content), 2)))
            else:
                f.create_dataset(name, data=np.array([b"ab"] * len(content)))


@settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(shd_layout())
def test_fuzz_read_shd(layout):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fuzz_shd.h5")
        write_layout(path, layout)
        try:
            events, labels = read_shd(path)
        except ValueError as err:
            assert "fuzz_shd.h5" in str(err)
            return
        assert len(events) == labels.size
        for e in events:
            assert e.dtype == UNIT_EVENT_DTYPE and np.all(e["t"] >= 0)


# --------------------------------------------------------------------------- cache

def test_cache_round_trip_array_and_iterable(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.random((7, 3, 2, 4, 4)).astype(np.float32)
    y = rng.integers(0, 10, 7)
    write_cache(tmp_path / "c.h5", x, y, {"T": 3, "dataset": "test"})
    with open_cache(tmp_path / "c.h5") as cache:
        assert len(cache) == 7 and cache.meta == {"T": 3, "dataset": "test"}
        np.testing.assert_array_equal(cache.labels, y)
        seen = np.concatenate([b for b, _ in cache.batches(3)])
        np.testing.assert_array_equal(seen, x)
        xb, yb = next(cache.batches(4, rng=np.random.default_rng(0)))
        order = np.random.default_rng(0).permutation(7)[:4]
        np.testing.assert_array_equal(xb, x[order])
        np.testing.assert_array_equal(yb, y[order])
        xt, _ = next(cache.batches(2, time_major=True))
        assert xt.shape == (3, 2, 2, 4, 4)
        assert [b.shape[0] for b, _ in cache.batches(3, drop_last=True)] == [3, 3]
        assert cache.attrs["schema_version"] == CACHE_SCHEMA_VERSION
    counts = (rng.integers(0, 4, (5, 2, 6))).astype(np.uint8)
    write_cache(tmp_path / "u.h5", iter(counts), np.arange(5), {})
    with open_cache(tmp_path / "u.h5") as cache:
        assert cache.x.dtype == np.uint8 and cache.x.chunks == (1, 2, 6)
        np.testing.assert_array_equal(cache[1:3][0], counts[1:3])


def test_cache_interrupted_write_keeps_old_cache(tmp_path):
    path = tmp_path / "cache.h5"
    write_cache(path, np.ones((2, 3, 4)), np.array([0, 1]), {"version": "old"})

    def failing_samples():
        yield np.zeros((3, 4))
        raise RuntimeError("preprocessing crashed")

    with pytest.raises(RuntimeError, match="preprocessing crashed"):
        write_cache(path, failing_samples(), np.array([5, 6]), {"version": "new"})
    with pytest.raises(ValueError, match="2 samples"):
        write_cache(path, iter([np.zeros((3, 4))]), np.array([5, 6]), {"version": "new"})
    with open_cache(path) as cache:
        assert cache.meta == {"version": "old"} and cache.labels.tolist() == [0, 1]
        np.testing.assert_array_equal(cache[0][0], np.ones((3, 4)))
    assert sorted(os.listdir(tmp_path)) == ["cache.h5"]          # no temp files left


def test_cache_rejects_foreign_files(tmp_path):
    (tmp_path / "text.h5").write_text("not hdf5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    write_cache(tmp_path / "old.h5", np.zeros((1, 2)), np.array([0]), {})
    with h5py.File(tmp_path / "old.h5", "a") as f:
        f.attrs["schema_version"] = 99
    for name, message in [("text.h5", "not a stlsim cache"), ("other.h5", "not a stlsim cache"),
                          ("old.h5", "schema version 99")]:
        with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}.*{message}"):
            open_cache(tmp_path / name)


# --------------------------------------------------------------------------- transforms

@pytest.mark.parametrize("mode", ["time", "count"])
def test_frames_count_events_in_window(mode):
    events = random_events(np.random.default_rng(6), 2000)
    frames = events_to_frames(events, 12, (34, 34), mode=mode, t_start=50_000, t_stop=250_000)
    inside = (events["t"] >= 50_000) & (events["t"] < 250_000)
    assert frames.shape == (12, 2, 34, 34) and frames.dtype == np.float32
    assert frames.sum() == inside.sum()
    assert frames[:, 1].sum() == (inside & (events["p"] == 1)).sum()
    per_bin = frames.sum(axis=(1, 2, 3))
    if mode == "count":
        assert per_bin.max() - per_bin.min() <= 1
    else:
        edges = 50_000 + np.arange(13) * 200_000 // 12
        np.testing.assert_array_equal(per_bin, np.histogram(events["t"][inside], edges)[0])


def test_frames_options():
    events = random_events(np.random.default_rng(7), 500, height=34, width=35)
    merged = events_to_frames(events, 4, (34, 35), polarity_channels=False)
    assert merged.shape == (4, 1, 34, 35) and merged.sum() == 500
    small = events_to_frames(events, 4, (34, 35), downsample=2)
    assert small.shape == (4, 2, 17, 18) and small.sum() == 500
    np.testing.assert_array_equal(
        small, events_to_frames(downsample_events(events, 2), 4, (17, 18)))
    norm = events_to_frames(events, 4, (34, 35), normalize=True)
    assert norm.max() == 1.0
    with pytest.raises(ValueError, match="inside the sensor"):
        events_to_frames(events, 4, (34, 34))
    with pytest.raises(ValueError, match="`mode` of `events_to_frames`"):
        events_to_frames(events, 4, (34, 35), mode="bins")
    assert events_to_frames(events[:0], 3, (2, 2)).sum() == 0


def test_sparse_matches_binary_frames():
    events = random_events(np.random.default_rng(8), 800)
    frames = events_to_frames(events, 5, (34, 34), downsample=2)
    pairs = events_to_sparse(events, 5, (34, 34), downsample=2)
    assert pairs.dtype == np.int64 and pairs.shape[1] == 2
    np.testing.assert_array_equal(pairs, np.argwhere(frames.reshape(5, -1) > 0))
    assert events_to_sparse(events, 5, (34, 34), unique=False).shape == (800, 2)
    units = make_unit_events([0, 10, 10, 999], [5, 1, 1, 699])
    np.testing.assert_array_equal(events_to_sparse(units, 2, t_start=0, t_stop=1000),
                                  [[0, 1], [0, 5], [1, 699]])


def test_units_to_frames_and_crop():
    rng = np.random.default_rng(9)
    units = make_unit_events(np.sort(rng.integers(0, 1_500_000, 400)), rng.integers(0, 700, 400))
    frames = units_to_frames(units, 14, t_max_us=1_400_000)
    assert frames.shape == (14, 700) and frames.sum() == (units["t"] < 1_400_000).sum()
    cropped = crop_time(units, 100_000, 200_000, rebase=True)
    assert cropped["t"].min() >= 0 and cropped["t"].max() < 100_000
    assert cropped.size == ((units["t"] >= 100_000) & (units["t"] < 200_000)).sum()


def test_augmentations_reproducible_from_seed():
    events = random_events(np.random.default_rng(10), 300)
    for fn, kwargs in [(jitter_events, dict(sigma_us=1000, sigma_xy=1, sensor_size=(34, 34))),
                       (drop_events, dict(p=0.3)),
                       (insert_events, dict(n_events=50, sensor_size=(34, 34)))]:
        a = fn(events, np.random.default_rng(1), **kwargs)
        b = fn(events, np.random.default_rng(1), **kwargs)
        c = fn(events, np.random.default_rng(2), **kwargs)
        np.testing.assert_array_equal(a, b)
        assert a.shape != c.shape or not np.array_equal(a, c)
        assert np.all(np.diff(a["t"]) >= 0)
    assert drop_events(events, np.random.default_rng(0), 0.0).size == 300
    assert drop_events(events, np.random.default_rng(0), 1.0).size == 0
    assert insert_events(events, np.random.default_rng(0), 50, (34, 34)).size == 350
    jittered = jitter_events(events, np.random.default_rng(0), sigma_xy=3, sensor_size=(34, 34))
    assert jittered["x"].max() < 34 and jittered["y"].min() >= 0
    units = make_unit_events([0, 5], [1, 2])
    assert insert_events(units, np.random.default_rng(0), 3, n_units=700).size == 5
    with pytest.raises(TypeError, match="`rng` of `drop_events`"):
        drop_events(events, 0, 0.5)


# --------------------------------------------------------------------------- synthetic

def test_saccade_events_digit_and_blank():
    rng = np.random.default_rng(11)
    events = saccade_events(digit_image(), rng)
    assert events.dtype == EVENT_DTYPE and events.size > 500
    assert set(np.unique(events["p"]).tolist()) == {0, 1}
    assert events["x"].max() < 34 and events["y"].max() < 34
    assert events["t"].min() >= 0 and events["t"].max() <= 300_000
    assert np.all(np.diff(events["t"]) >= 0)
    # The ON and OFF events of a closed saccade path roughly balance.
    assert abs(int(events["p"].sum()) * 2 - events.size) < 0.2 * events.size
    np.testing.assert_array_equal(events, saccade_events(digit_image(), np.random.default_rng(0)))
    assert saccade_events(np.zeros((28, 28)), rng).size == 0
    assert saccade_events(np.full((28, 28), 0.5), rng, threshold_sigma=0.1).size > 0  # edges move
    noisy = saccade_events(np.zeros((28, 28)), rng, noise_rate_hz=5.0)
    assert noisy.size > 0


def test_make_neuromorphic_dataset_round_trips_through_nmnist(tmp_path):
    images = np.stack([digit_image(), np.zeros((28, 28))])
    events, labels = make_neuromorphic_dataset(images, [1, 0], np.random.default_rng(12))
    assert labels.tolist() == [1, 0] and events[1].size == 0
    write_nmnist(tmp_path / "d.bin", events[0])
    np.testing.assert_array_equal(read_nmnist(tmp_path / "d.bin"), events[0])
    frames = events_to_frames(events[0], 10, (34, 34), t_start=0, t_stop=300_001)
    assert frames.sum() == events[0].size


def test_module_exports_exist():
    for name in ev_mod.__all__:
        assert callable(getattr(ev_mod, name))
