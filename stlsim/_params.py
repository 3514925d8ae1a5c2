"""``Network.params``: a dict of arrays that knows which entries may have changed.

Checking every parameter for NaN at every call costs O(parameters): ~0.1 ms for the
627 000 weights of 784-800-10, as much as the event engine's whole forward there. This
mapping lets the Network skip that scan, and only that scan, for an entry that provably
did not change since it was last checked. The argument (CPython):

* To change an array in place, code needs a reference to it (or to a view of it, which
  references it through ``.base``; a ``memoryview`` references it too).
* A reference to an entry can only be had from this mapping (``params[key]``,
  ``.get``, ``.items()``, ``.values()``, a copy of the mapping), or from whoever still
  holds the array it was assigned from.
* So an entry is *private* while the array owns its memory (``base is None``) and its
  reference count is the mapping's own: nobody else can write to it.

Every way of reading or assigning an entry through the mapping marks it *exposed*.
An entry is *clean* when the Network checked it in full (type, shape, dtype, every
value finite) while it was private, and nothing exposed it since. At a call, a clean
entry that is still private skips the finiteness scan; anything else (exposed, or held
elsewhere, or a view) gets the full check, every time, until it is private again. The
type, shape and dtype checks are O(1) per entry and always run. Reading an entry and
writing NaN into it, in place, through a held reference or a view, before the next call:
all give the full check (``tests/test_params_guard.py``).

Each entry also has a *version*, a number that changes whenever the entry may have
changed (every check that was not skipped). Caches derived from a parameter (the event
engine's transposed weights, a lazy ``Record``) are valid while the version is.
Lazy ``Record`` objects register here; before a reference to any entry is handed out
(the moment the entry could start to change), they are built from the current values.
"""
from __future__ import annotations

import itertools
import sys
import weakref
from collections.abc import MutableMapping

import numpy as np

__all__ = ["ParamDict"]


def _references(data, key) -> int:
    value = data[key]
    return sys.getrefcount(value)


# The reference count of an entry that nothing outside the mapping holds, as
# ``_references`` sees it (the dict, its local name, getrefcount's argument).
_PRIVATE_REFERENCES = _references({"probe": np.zeros(1)}, "probe")

_VERSIONS = itertools.count(1)

# Full checks (finiteness scans) the Network ran: benchmarks and tests read it to see
# whether the skip happened.
SCANS = {"full": 0}


def _unpickled(data) -> ParamDict:
    """A ParamDict from pickle: arrays that come back as views of pickle's buffer (protocol 5)
    are copied once, so the entries own their memory and can be *private* again (without
    that, every call of an unpickled network -- a Dask worker's, a loaded one's -- would scan
    every parameter). Entries that were one array stay one array."""
    copies = {}
    owned = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray) and _root(value).base is not None:    # memory pickle's buffer owns
            value = copies.setdefault(id(value), value.copy())
        owned[key] = value
    return ParamDict(owned)


def _root(array: np.ndarray) -> np.ndarray:
    """The array at the end of ``array``'s chain of ndarray bases (``array`` itself if it owns its memory)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


class ParamDict(MutableMapping):
    """A mutable mapping of parameter arrays (``Network.params``); use it like a dict.

    ``dict(net.params)``, ``net.params.copy()`` give plain dicts of the same arrays.
    """

    def __init__(self, data=()):
        self._data = dict(data)
        self._clean = set()            # keys checked in full while private, not exposed since
        self._version = {key: next(_VERSIONS) for key in self._data}
        self._pending = weakref.WeakSet()   # lazy records built from these values

    # -------------------------------------------------------- the dict interface --
    def __getitem__(self, key):
        value = self._data[key]
        self._expose(key)
        return value

    def __setitem__(self, key, value):
        self._expose(key)
        self._data[key] = value
        self._version[key] = next(_VERSIONS)

    def __delitem__(self, key):
        self._expose(key)
        del self._data[key]
        self._version.pop(key, None)

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __contains__(self, key):
        return key in self._data

    def __repr__(self):
        return repr(self._data)

    def copy(self) -> dict:
        """A plain dict of the same arrays (as ``dict.copy``)."""
        return dict(self.items())

    def __or__(self, other):
        return dict(self.items()) | dict(other)

    def __ror__(self, other):
        return dict(other) | dict(self.items())

    def __reduce__(self):
        return (_unpickled, (dict(self.items()),))

    # ------------------------------------------------------ what the Network uses --
    def _expose(self, key):
        """A reference to ``key`` is about to leave the mapping: it may change from now on."""
        self._clean.discard(key)
        if self._pending:
            for record in list(self._pending):
                record._build()
            self._pending.clear()

    def _private(self, key) -> bool:
        """Nothing outside this mapping can write to the entry now."""
        value = self._data[key]
        return (isinstance(value, np.ndarray) and value.base is None
                and _references(self._data, key) <= _PRIVATE_REFERENCES + 1)

    def _needs_check(self, key) -> bool:
        """True unless the entry is clean and still private (then it is unchanged)."""
        return key not in self._clean or not self._private(key)

    def _unchanged(self, versions) -> bool:
        """True when the entries are exactly the keys of ``versions`` (key -> version)
        and each is still at that version, clean and private: nothing can have changed
        it since its last full check (what a cached plan keys on; O(1) per entry)."""
        if len(self._data) != len(versions):
            return False
        clean, current = self._clean, self._version
        for key, version in versions.items():
            if current.get(key) != version or key not in clean or not self._private(key):
                return False
        return True

    def _checked(self, key):
        """The entry was just checked in full: it gets a new version, and is clean if
        private (unchanged until something exposes it or holds it)."""
        SCANS["full"] += 1
        self._version[key] = next(_VERSIONS)
        if self._private(key):
            self._clean.add(key)
        else:
            self._clean.discard(key)

    def _pend(self, record):
        """``record`` is built from the current values: build it before they can change."""
        self._pending.add(record)
