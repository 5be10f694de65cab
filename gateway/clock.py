"""The gateway's one wall clock, injectable for tests (responsible-gaming windows, cooling-off
periods and exclusions are measured on it).

``now_us()`` is ``time.time_ns() // 1000`` unless ``clock_offset_file`` is configured (sandbox
mode only; ``gateway.preflight`` refuses it in production): the file holds an integer number
of seconds added to the system clock, re-read at most every ``REREAD_INTERVAL_NS``. Every
process of a gateway (edges and shards) reads the same file, so a test moves all their clocks
at once by rewriting it (``tests/helpers.py``, ``shift_clock``). Time only ever moves as the
file says; nothing here smooths a jump.
"""

from __future__ import annotations

import os
import time

REREAD_INTERVAL_NS = 50_000_000  # a test waits a little longer than this after moving the clock

_offset_file = ""
_offset_us = 0
_read_at_ns = 0


def configure(offset_file: str) -> None:
    """Use ``offset_file`` for the offset from now on ("" = the system clock alone)."""
    global _offset_file, _offset_us, _read_at_ns
    _offset_file = offset_file
    _offset_us = 0
    _read_at_ns = 0


def now_us() -> int:
    """Microseconds since the Unix epoch, plus the configured offset."""
    if not _offset_file:
        return time.time_ns() // 1_000
    return time.time_ns() // 1_000 + _offset()


def _offset() -> int:
    global _offset_us, _read_at_ns
    now_ns = time.monotonic_ns()
    if now_ns - _read_at_ns >= REREAD_INTERVAL_NS:
        _read_at_ns = now_ns
        try:
            with open(_offset_file) as handle:
                _offset_us = int(handle.read().strip() or "0") * 1_000_000
        except OSError:
            _offset_us = 0  # no file (yet): the system clock
        except ValueError:
            pass  # caught mid-write: keep the last offset
    return _offset_us


def offset_file_path(path: str) -> str:
    """``path`` made absolute (so every process finds the same file)."""
    return os.path.abspath(path) if path else ""
