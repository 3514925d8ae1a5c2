"""Ctrl-C, SIGTERM, SIGHUP and SIGQUIT as a flag that a training loop checks between batches.

Every signal a terminal or a scheduler sends to stop a run (``STOP_SIGNALS``: SIGINT, SIGTERM,
and SIGHUP and SIGQUIT where the platform has them) is handled the same way.

``interrupt_guard()`` turns the signals into ``requested`` for the duration of a block; a
save inside ``protect()`` is never cut short. Every application (train, compare, sweep)
uses this one guard, nested guards share the outermost.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading

__all__ = ["interrupt_guard", "STOP_SIGNALS"]

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
                     if hasattr(signal, name))


class _Interrupts:
    """SIGINT/SIGTERM state of the innermost ``interrupt_guard``."""

    def __init__(self):
        self.requested = None          # the signal's name once one arrived
        self.saving = 0                # > 0 while a file is being written
        self.deferring = 0             # > 0 while the second signal is only noted (``defer_again``)
        self.again = 0                 # signals after the first, noted while deferring

    def check(self):
        """Raise KeyboardInterrupt if a signal arrived (call between batches)."""
        if self.requested:
            raise KeyboardInterrupt(self.requested)

    @contextlib.contextmanager
    def defer_again(self):
        """A block where a second signal is only noted (``again``) for the block's own loop to
        act on at its next poll, instead of raising KeyboardInterrupt wherever Python is: inside
        another library's finalizer or weakref callback, where it would be printed as an
        ignored exception with its traceback and lost. A third signal raises as before."""
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1

    def check_again(self):
        """Raise KeyboardInterrupt if a second signal arrived inside ``defer_again``."""
        if self.again:
            raise KeyboardInterrupt(self.requested)

    @contextlib.contextmanager
    def protect(self):
        """A block no signal interrupts (a save); a pending signal is acted on after it."""
        self.saving += 1
        try:
            yield
        finally:
            self.saving -= 1


_ACTIVE: list = []


@contextlib.contextmanager
def interrupt_guard():
    """Turn the stop signals (``STOP_SIGNALS``) into a flag for the block (main thread only).

    Yields an object with ``requested`` (the signal's name or None), ``check()`` (raises
    KeyboardInterrupt once a signal arrived) and ``protect()`` (a block, such as a save,
    that no signal interrupts). A second signal outside a protected block raises
    KeyboardInterrupt at once, so a stuck batch can still be stopped; inside
    ``defer_again()`` (a loop that polls, such as the parallel executor's) it is noted and
    raised by the loop's next ``check_again()``, and a third raises at once. Nested guards
    share the outer one; outside the main thread the guard only keeps the flag.
    """
    if _ACTIVE:
        yield _ACTIVE[-1]
        return
    state = _Interrupts()

    def handler(signum, frame):
        first = state.requested is None
        state.requested = signal.Signals(signum).name
        if first:
            sys.stderr.write(f"\n{state.requested}: stopping after this batch, once the finished epochs "
                             "are saved (again to stop at once)\n")
            sys.stderr.flush()
        elif state.saving:
            pass
        elif state.deferring and not state.again:
            state.again += 1
        else:
            raise KeyboardInterrupt(state.requested)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            try:
                previous[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):  # pragma: no cover - embedded interpreters
                pass
    _ACTIVE.append(state)
    try:
        yield state
    finally:
        _ACTIVE.pop()
        for sig, old in previous.items():
            signal.signal(sig, old)
