"""Readers and writers for event-camera and spiking-audio data sets.

Formats (byte layouts follow the data sets' own documentation; see ``docs/data.md``):

* **N-MNIST** ``.bin`` (Orchard et al. 2015): no header, 5 bytes per event. Byte 0 = x,
  byte 1 = y, then a 24-bit big-endian word whose bit 23 is the polarity and whose bits
  22..0 are the timestamp in microseconds. Sensor 34 x 34.
* **DVS128 Gesture** AEDAT 3.1 (Amir et al. 2017): a text header starting ``#!AER-DAT3.1``
  and ending with the line ``#!END-HEADER\\r\\n``, then packets, each a 28-byte
  little-endian header ``<HHIIIIII`` followed by ``eventCapacity * eventSize`` bytes of
  events. Only eventType 1 (polarity) is decoded; other packets are skipped. Labels come
  in a CSV ``class,startTime_usec,endTime_usec`` (classes 1..11). Sensor 128 x 128.
* **SHD** HDF5 (Cramer et al. 2020): ``/spikes/times`` (ragged float16, seconds),
  ``/spikes/units`` (ragged ints 0..699), ``/labels`` (0..19), ``/extra/speaker``.

Events are NumPy structured arrays. Camera events use :data:`EVENT_DTYPE`, fields
``t`` (int64 microseconds), ``x``, ``y`` (int16 pixel column and row) and ``p`` (int8
polarity, 1 = ON / brighter, 0 = OFF). Audio-like events use :data:`UNIT_EVENT_DTYPE`,
fields ``t`` (int64 microseconds) and ``unit`` (int32 input channel).

Every reader raises ``ValueError`` naming the file and what is wrong with it; every
writer is atomic (temporary file, then rename; see :func:`stlsim._io.atomic_path`).
``h5py`` is imported only inside the SHD functions, so importing this module pulls in
NumPy alone.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from .._checks import fail
from .._io import atomic_path, provenance

__all__ = [
    "EVENT_DTYPE",
    "UNIT_EVENT_DTYPE",
    "NMNIST_SENSOR_SIZE",
    "DVS_GESTURE_SENSOR_SIZE",
    "SHD_N_UNITS",
    "make_events",
    "make_unit_events",
    "read_nmnist",
    "write_nmnist",
    "iter_nmnist_chunks",
    "read_aedat",
    "write_aedat",
    "read_gesture_labels",
    "split_gesture_recording",
    "read_trial_list",
    "read_shd",
    "write_shd",
]

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])
UNIT_EVENT_DTYPE = np.dtype([("t", np.int64), ("unit", np.int32)])

NMNIST_SENSOR_SIZE = (34, 34)          # (H, W)
DVS_GESTURE_SENSOR_SIZE = (128, 128)   # (H, W)
SHD_N_UNITS = 700

_NMNIST_RECORD = 5
_NMNIST_MAX_T = (1 << 23) - 1
_AEDAT_MAGIC = b"#!AER-DAT3.1"
_AEDAT_END = b"#!END-HEADER"
_AEDAT_PACKET = struct.Struct("<HHIIIIII")
_AEDAT_POLARITY = 1
_AEDAT_MAX_XY = 0x7FFF


def _bad_file(path, what: str) -> ValueError:
    return ValueError(f"File {os.fspath(path)!r} {what}.")


# --------------------------------------------------------------------------- events

def make_events(t, x, y, p) -> np.ndarray:
    """Build a camera event array (:data:`EVENT_DTYPE`) from four equal-length sequences."""
    t, x, y, p = (np.asarray(a).reshape(-1) for a in (t, x, y, p))
    if not (t.size == x.size == y.size == p.size):
        raise fail("t, x, y, p", "sequences of equal length",
                   f"lengths {t.size}, {x.size}, {y.size}, {p.size}", "make_events")
    events = np.empty(t.size, dtype=EVENT_DTYPE)
    events["t"], events["x"], events["y"], events["p"] = t, x, y, p
    return events


def make_unit_events(t, unit) -> np.ndarray:
    """Build an audio-like event array (:data:`UNIT_EVENT_DTYPE`) from times and units."""
    t, unit = np.asarray(t).reshape(-1), np.asarray(unit).reshape(-1)
    if t.size != unit.size:
        raise fail("t, unit", "sequences of equal length", f"lengths {t.size}, {unit.size}",
                   "make_unit_events")
    events = np.empty(t.size, dtype=UNIT_EVENT_DTYPE)
    events["t"], events["unit"] = t, unit
    return events


def _check_camera_events(events, owner: str, *, max_xy: int, max_t: int) -> np.ndarray:
    arr = np.asarray(events)
    if arr.dtype.names is None or not {"t", "x", "y", "p"} <= set(arr.dtype.names) or arr.ndim != 1:
        raise fail("events", "a 1-D structured array with fields t, x, y, p",
                   f"dtype {arr.dtype} and shape {arr.shape}", owner, TypeError)
    for name, high in (("x", max_xy), ("y", max_xy), ("p", 1), ("t", max_t)):
        col = arr[name]
        if col.dtype.kind not in "iub":
            raise fail(f"events['{name}']", "integers", f"dtype {col.dtype}", owner, TypeError)
        if col.size and (col.min() < 0 or col.max() > high):
            raise fail(f"events['{name}']", f"integers in [0, {high}]",
                       f"values in [{col.min()}, {col.max()}]", owner)
    return arr


# --------------------------------------------------------------------------- N-MNIST

def _decode_nmnist(raw: np.ndarray) -> np.ndarray:
    """Decode an (n, 5) uint8 array of N-MNIST records."""
    events = np.empty(raw.shape[0], dtype=EVENT_DTYPE)
    events["x"] = raw[:, 0]
    events["y"] = raw[:, 1]
    events["p"] = raw[:, 2] >> 7
    events["t"] = ((raw[:, 2].astype(np.int64) & 0x7F) << 16) | (raw[:, 3].astype(np.int64) << 8) \
        | raw[:, 4].astype(np.int64)
    return events


def _encode_nmnist(events: np.ndarray) -> np.ndarray:
    """Encode validated camera events to an (n, 5) uint8 array of N-MNIST records."""
    t = events["t"].astype(np.int64)
    raw = np.empty((events.size, _NMNIST_RECORD), dtype=np.uint8)
    raw[:, 0] = events["x"]
    raw[:, 1] = events["y"]
    raw[:, 2] = (events["p"].astype(np.int64) << 7) | (t >> 16)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    return raw


def _nmnist_size(path) -> int:
    size = os.path.getsize(path)
    if size % _NMNIST_RECORD:
        raise _bad_file(path, f"is not an N-MNIST .bin file: its size ({size} bytes) is not a "
                              f"multiple of {_NMNIST_RECORD} (the last record is truncated)")
    return size


def read_nmnist(path) -> np.ndarray:
    """Read one N-MNIST ``.bin`` recording into an :data:`EVENT_DTYPE` array.

    Events keep file order (time-sorted in the published files). Raises ``ValueError``
    naming the file when its size is not a multiple of 5 bytes.
    """
    _nmnist_size(path)
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, _NMNIST_RECORD)
    return _decode_nmnist(raw)


def iter_nmnist_chunks(path, chunk_events: int = 1 << 20):
    """Yield an N-MNIST file as :data:`EVENT_DTYPE` arrays of at most ``chunk_events`` events.

    Reads ``5 * chunk_events`` bytes at a time, so memory stays bounded by the chunk
    size however large the file (see ``benchmarks/io_memory.py``).
    """
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) \
            or chunk_events < 1:
        raise fail("chunk_events", "a positive integer", repr(chunk_events), "iter_nmnist_chunks")
    _nmnist_size(path)
    with open(path, "rb") as handle:
        while True:
            buf = handle.read(_NMNIST_RECORD * int(chunk_events))
            if not buf:
                return
            if len(buf) % _NMNIST_RECORD:  # the file shrank while we read it
                raise _bad_file(path, "ends in a truncated N-MNIST record")
            yield _decode_nmnist(np.frombuffer(buf, dtype=np.uint8).reshape(-1, _NMNIST_RECORD))


def write_nmnist(path, events) -> None:
    """Write camera events as an N-MNIST ``.bin`` file, atomically.

    ``x`` and ``y`` must lie in [0, 255], ``p`` in {0, 1} and ``t`` in [0, 2**23 - 1] us
    (the format's 23-bit timestamp).
    """
    events = _check_camera_events(events, "write_nmnist", max_xy=255, max_t=_NMNIST_MAX_T)
    raw = _encode_nmnist(events)
    with atomic_path(path) as tmp:
        raw.tofile(tmp)


# --------------------------------------------------------------------------- AEDAT 3.1

def _aedat_header_end(data: bytes, path) -> int:
    """Return the offset just after the ``#!END-HEADER`` line."""
    if not data.startswith(_AEDAT_MAGIC):
        raise _bad_file(path, f"is not an AEDAT 3.1 file: it does not start with {_AEDAT_MAGIC!r}")
    pos = 0
    while True:
        if pos >= len(data) or data[pos:pos + 1] != b"#":
            raise _bad_file(path, f"has an AEDAT header that is not closed by {_AEDAT_END!r} "
                                  f"(header line at byte {pos} does not start with '#')")
        end = data.find(b"\n", pos)
        if end < 0:
            raise _bad_file(path, f"has an AEDAT header that is not closed by {_AEDAT_END!r}")
        line = data[pos:end].rstrip(b"\r")
        pos = end + 1
        if line == _AEDAT_END:
            return pos


def read_aedat(path) -> np.ndarray:
    """Read the polarity events of an AEDAT 3.1 file (DVS128 Gesture) into :data:`EVENT_DTYPE`.

    Each packet header gives ``eventTSOverflow``; the time of an event is
    ``timestamp | (eventTSOverflow << 31)`` in microseconds. Packets of types other than
    1 (polarity) are skipped. Bit 0 of an event's data word is its *validity mark*;
    events with the bit cleared were invalidated by the recording software (e.g. by a
    filter) and are dropped, as the AEDAT 3.1 specification prescribes.

    Raises ``ValueError`` naming the file for: a missing ``#!AER-DAT3.1`` magic or
    unclosed header, a truncated packet header, a packet whose events overrun the file,
    a polarity packet whose ``eventSize`` is not 8 (or whose timestamp offset is not 4),
    a packet claiming more events than its capacity, or a negative timestamp.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    pos = _aedat_header_end(data, path)
    chunks = []
    n_bytes = len(data)
    while pos < n_bytes:
        if n_bytes - pos < _AEDAT_PACKET.size:
            raise _bad_file(path, f"ends in a truncated AEDAT packet header at byte {pos} "
                                  f"({n_bytes - pos} of {_AEDAT_PACKET.size} bytes)")
        (event_type, _source, event_size, ts_offset, ts_overflow,
         capacity, number, valid) = _AEDAT_PACKET.unpack_from(data, pos)
        where = f"has an AEDAT packet at byte {pos}"
        pos += _AEDAT_PACKET.size
        if number > capacity or valid > number:
            raise _bad_file(path, f"{where} with inconsistent counts: eventNumber={number}, "
                                  f"eventValid={valid}, eventCapacity={capacity}")
        if event_size == 0 and capacity > 0:
            raise _bad_file(path, f"{where} with eventSize 0 and eventCapacity {capacity}")
        payload = event_size * capacity
        if payload > n_bytes - pos:
            raise _bad_file(path, f"{where} whose {capacity} events of {event_size} bytes "
                                  f"overrun the file ({n_bytes - pos} bytes left)")
        if event_type == _AEDAT_POLARITY:
            if event_size != 8 or ts_offset != 4:
                raise _bad_file(path, f"{where}: polarity events must have eventSize 8 and "
                                      f"eventTSOffset 4, got {event_size} and {ts_offset}")
            words = np.frombuffer(data, dtype="<u4", count=2 * number, offset=pos).reshape(-1, 2)
            chunks.append(_decode_polarity(words, ts_overflow, path, where))
        pos += payload
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    return np.concatenate(chunks)


def _decode_polarity(words: np.ndarray, ts_overflow: int, path, where: str) -> np.ndarray:
    keep = (words[:, 0] & 1).astype(bool)   # validity mark
    words = words[keep]
    address = words[:, 0]
    timestamp = words[:, 1].view("<i4").astype(np.int64)
    if timestamp.size and timestamp.min() < 0:
        raise _bad_file(path, f"{where} with a negative event timestamp ({timestamp.min()})")
    events = np.empty(address.size, dtype=EVENT_DTYPE)
    events["x"] = (address >> 17) & _AEDAT_MAX_XY
    events["y"] = (address >> 2) & _AEDAT_MAX_XY
    events["p"] = (address >> 1) & 1
    events["t"] = timestamp | (np.int64(ts_overflow) << 31)
    return events


def write_aedat(path, events, *, packet_events: int = 4096, source: str = "DVS128") -> None:
    """Write camera events as an AEDAT 3.1 file of polarity packets, atomically.

    Events are written in the given order, split into packets of at most
    ``packet_events`` events; a new packet starts whenever ``t >> 31`` (the timestamp
    overflow) changes. All events are marked valid. ``x`` and ``y`` must lie in
    [0, 32767], ``p`` in {0, 1}, ``t`` in [0, 2**62].
    """
    events = _check_camera_events(events, "write_aedat", max_xy=_AEDAT_MAX_XY, max_t=1 << 62)
    if isinstance(packet_events, bool) or not isinstance(packet_events, (int, np.integer)) \
            or packet_events < 1:
        raise fail("packet_events", "a positive integer", repr(packet_events), "write_aedat")
    t = events["t"].astype(np.int64)
    address = ((events["x"].astype(np.uint32) << 17) | (events["y"].astype(np.uint32) << 2)
               | (events["p"].astype(np.uint32) << 1) | np.uint32(1))
    words = np.empty((events.size, 2), dtype="<u4")
    words[:, 0] = address
    words[:, 1] = (t & 0x7FFFFFFF).astype(np.uint32)
    overflow = t >> 31
    header = (b"#!AER-DAT3.1\r\n#Format: RAW\r\n"
              + f"#Source 1: {source}\r\n".encode("ascii")
              + b"#Written-by: stlsim\r\n#!END-HEADER\r\n")
    # Packet boundaries: every change of overflow, and every packet_events events within a run.
    changes = np.flatnonzero(np.diff(overflow)) + 1
    runs = np.split(np.arange(events.size), changes) if events.size else []
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header)
        for run in runs:
            for start in range(0, run.size, packet_events):
                idx = run[start:start + packet_events]
                n = idx.size
                handle.write(_AEDAT_PACKET.pack(_AEDAT_POLARITY, 1, 8, 4, int(overflow[idx[0]]),
                                                n, n, n))
                handle.write(words[idx].tobytes())


def read_gesture_labels(csv_path):
    """Read a DVS128 Gesture label CSV (``class,startTime_usec,endTime_usec``).

    Returns ``(classes, start_us, end_us)``: three int64 arrays, classes in 1..11 as in
    the file. Raises ``ValueError`` naming the file for a bad header, a malformed row,
    a class outside 1..11 or a window that ends before it starts.
    """
    with open(csv_path, encoding="utf-8", errors="replace") as handle:
        lines = [line.strip() for line in handle]
    lines = [line for line in lines if line]
    if not lines or [c.strip() for c in lines[0].split(",")] != \
            ["class", "startTime_usec", "endTime_usec"]:
        raise _bad_file(csv_path, "is not a DVS128 Gesture label file: its first line must be "
                                  "'class,startTime_usec,endTime_usec'")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",")
        try:
            row = tuple(int(f) for f in fields)
        except ValueError:
            row = ()
        if len(row) != 3:
            raise _bad_file(csv_path, f"has a malformed label row at line {number}: {line!r}")
        if not 1 <= row[0] <= 11:
            raise _bad_file(csv_path, f"has class {row[0]} at line {number}; classes are 1..11")
        if row[2] < row[1]:
            raise _bad_file(csv_path, f"has a label window ending before it starts at line {number}")
        rows.append(row)
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()


def split_gesture_recording(events, labels):
    """Cut one recording into labelled gestures.

    ``labels`` is the ``(classes, start_us, end_us)`` triple of :func:`read_gesture_labels`.
    Returns a list of ``(events_slice, class_index)`` with ``start_us <= t < end_us`` and
    ``class_index = class - 1`` in 0..10. Times stay absolute; the frame transforms of
    :mod:`stlsim.data.events` start their bins at the first event by default.
    """
    events = np.asarray(events)
    if events.dtype.names is None or "t" not in events.dtype.names:
        raise fail("events", "a structured event array with a field 't'", f"dtype {events.dtype}",
                   "split_gesture_recording", TypeError)
    classes, start, end = (np.asarray(a, dtype=np.int64).reshape(-1) for a in labels)
    t = events["t"]
    return [(events[(t >= s) & (t < e)], int(c) - 1) for c, s, e in zip(classes, start, end)]


def read_trial_list(path) -> list:
    """Read ``trials_to_train.txt`` / ``trials_to_test.txt``: one AEDAT file name per line.

    Blank lines are skipped; surrounding whitespace is stripped.
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line.strip() for line in handle if line.strip()]


# --------------------------------------------------------------------------- SHD (HDF5)

def _read_ragged(dataset, name: str, path, kinds: str) -> list:
    if dataset.ndim != 1:
        raise _bad_file(path, f"has {name!r} of shape {dataset.shape}; it must be 1-D "
                              f"(one ragged array per sample)")
    samples = []
    for i, item in enumerate(dataset[()]):
        arr = np.asarray(item)
        if arr.ndim != 1 or arr.dtype.kind not in kinds:
            raise _bad_file(path, f"has sample {i} of {name!r} with dtype {arr.dtype} and shape "
                                  f"{arr.shape}; it must be a 1-D numeric array")
        samples.append(arr)
    return samples


def read_shd(path):
    """Read a Spiking Heidelberg Digits (or same-layout) HDF5 file.

    Returns ``(events_list, labels)``: one :data:`UNIT_EVENT_DTYPE` array per sample and an
    int64 label array. Times are stored as float16 seconds; they are widened to float64
    *before* scaling to microseconds (float16 * 1e6 overflows to inf) and rounded to int64.

    The file is read in a child process under a time limit (``stlsim._io.read_hdf5``), so a
    damaged file gives an error naming it, never a hang or a raw h5py error.

    Raises ``ValueError`` naming the file for: not HDF5, a missing ``/spikes/times``,
    ``/spikes/units`` or ``/labels``, times and units of different counts or lengths,
    labels of a different count, non-finite or negative times, or negative units.
    """
    from .._io import read_hdf5

    return read_hdf5(path, "stlsim.data.neuromorphic:_read_shd_open")


def _read_shd_open(handle, path):
    import h5py

    for name in ("spikes/times", "spikes/units", "labels"):
        if not isinstance(handle.get(name), h5py.Dataset):
            raise _bad_file(path, f"is not an SHD file: dataset '/{name}' is missing")
    times = _read_ragged(handle["spikes/times"], "/spikes/times", path, "f")
    units = _read_ragged(handle["spikes/units"], "/spikes/units", path, "iu")
    labels_ds = handle["labels"]
    if labels_ds.ndim != 1:
        raise _bad_file(path, f"has '/labels' of shape {labels_ds.shape}; it must be 1-D")
    labels = np.asarray(labels_ds[()])
    stored = handle.attrs.get("stlsim_digest")
    if stored is not None:              # files written by write_shd: check every value
        if isinstance(stored, bytes):
            stored = stored.decode(errors="replace")
        if _shd_digest(times, units, labels) != stored:
            raise _bad_file(path, "does not match the digest stlsim stored in it (the file is damaged)")
    if labels.dtype.kind not in "iu":
        raise _bad_file(path, f"has '/labels' of dtype {labels.dtype}; it must hold integers")
    if not (len(times) == len(units) == labels.size):
        raise _bad_file(path, f"has mismatched sample counts: {len(times)} in '/spikes/times', "
                              f"{len(units)} in '/spikes/units', {labels.size} in '/labels'")
    events_list = []
    for i, (t_sec, unit) in enumerate(zip(times, units)):
        if t_sec.size != unit.size:
            raise _bad_file(path, f"has sample {i} with {t_sec.size} times but {unit.size} units")
        t_sec = t_sec.astype(np.float64)  # widen BEFORE scaling: float16 * 1e6 overflows
        if t_sec.size and not (np.all(np.isfinite(t_sec)) and t_sec.min() >= 0):
            raise _bad_file(path, f"has sample {i} with negative or non-finite spike times")
        if unit.size and (unit.min() < 0 or unit.max() > np.iinfo(np.int32).max):
            raise _bad_file(path, f"has sample {i} with unit indices outside [0, 2**31 - 1]")
        events_list.append(make_unit_events(np.rint(t_sec * 1e6).astype(np.int64), unit))
    return events_list, labels.astype(np.int64)


def _shd_digest(times, units, labels) -> str:
    """sha256 over the stored times (float16), units and labels, sample by sample."""
    import hashlib

    h = hashlib.sha256()
    for t_sec, unit in zip(times, units):
        for arr in (np.asarray(t_sec, dtype=np.float16), np.asarray(unit, dtype=np.uint16)):
            h.update(len(arr).to_bytes(8, "little"))
            h.update(np.ascontiguousarray(arr).tobytes())
    h.update(np.ascontiguousarray(np.asarray(labels, dtype=np.uint16)).tobytes())
    return "sha256:" + h.hexdigest()


def write_shd(path, events_list, labels, speaker=None) -> None:
    """Write unit events in the SHD layout, atomically.

    Times go to ``/spikes/times`` as float16 seconds (lossy: float16 keeps 11 significant
    bits, about 0.5 ms at 1 s), units to ``/spikes/units`` as uint16, labels to ``/labels``
    as uint16 and, when given, ``speaker`` to ``/extra/speaker``. The root carries a digest of
    the times, units and labels (``read_shd`` checks it; files from elsewhere have none) and
    provenance attributes.
    """
    import h5py

    owner = "write_shd"
    events_list = list(events_list)
    for i, ev in enumerate(events_list):
        ev = np.asarray(ev)
        if ev.dtype.names is None or not {"t", "unit"} <= set(ev.dtype.names) or ev.ndim != 1:
            raise fail(f"events_list[{i}]", "a 1-D structured array with fields t, unit",
                       f"dtype {ev.dtype}", owner, TypeError)
        if ev.size and (ev["t"].min() < 0 or ev["unit"].min() < 0 or ev["unit"].max() > 65535):
            raise fail(f"events_list[{i}]", "events with t >= 0 and unit in [0, 65535]",
                       f"t in [{ev['t'].min()}, {ev['t'].max()}], unit in "
                       f"[{ev['unit'].min()}, {ev['unit'].max()}]", owner)
    labels = np.asarray(labels)
    if labels.shape != (len(events_list),) or labels.dtype.kind not in "iu":
        raise fail("labels", f"an integer array of shape ({len(events_list)},)",
                   f"dtype {labels.dtype} and shape {labels.shape}", owner)
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise fail("labels", "integers in [0, 65535]", f"values in [{labels.min()}, {labels.max()}]",
                   owner)
    if speaker is not None:
        speaker = np.asarray(speaker)
        if speaker.shape != labels.shape or speaker.dtype.kind not in "iu":
            raise fail("speaker", f"an integer array of shape ({labels.size},)",
                       f"dtype {speaker.dtype} and shape {speaker.shape}", owner)
    n = len(events_list)
    with atomic_path(path, suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as handle:
            for key, value in provenance(format="shd").items():
                handle.attrs[key] = value
            times = handle.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
            units = handle.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
            stored_times, stored_units = [], []
            for i, ev in enumerate(events_list):
                stored_times.append((np.asarray(ev["t"], dtype=np.float64) / 1e6).astype(np.float16))
                stored_units.append(np.asarray(ev["unit"]).astype(np.uint16))
                times[i] = stored_times[-1]
                units[i] = stored_units[-1]
            handle.create_dataset("labels", data=labels.astype(np.uint16))
            handle.attrs["stlsim_digest"] = _shd_digest(stored_times, stored_units, labels)
            if speaker is not None:
                handle.create_dataset("extra/speaker", data=speaker.astype(np.uint16))
