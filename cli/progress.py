"""Progress of long commands: a bar on a terminal, plain lines in a log.

A command's output piped to a file (a batch job's log) gets no bar, since a bar redraws one
line with carriage returns; it gets instead a line every ``XALIGN_PROGRESS_INTERVAL``
seconds (default 30; ``0`` writes one per update), each saying what is done, the rate and
the time left, and a last line when the work ends, e.g.::

    extracting: 41,600/120,320 words (35%), 1,310 words/s, 0:00:31 elapsed, about 0:01:00 left; 48 MiB written
    extracting: done, 120,320 words in 0:01:32 (1,308 words/s); 139 MiB written

Both go to stderr; ``-q`` turns them off. The long commands open their bars with
:func:`progress_bar` and run slab jobs with :func:`persist_slabs`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LineProgress", "persist_slabs", "progress_bar"]

INTERVAL_VARIABLE = "XALIGN_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


def progress_bar(*, desc: str, unit: str, total: int | None = None, unit_scale: bool = False) -> Any:
    """A tqdm bar on stderr when it is a terminal, else a :class:`LineProgress`; either has
    ``update(n)``, ``total``, ``set_postfix_str(text)`` and ``close()``. Silent under ``-q``."""
    from tqdm import tqdm

    quiet = logging.getLogger("xalign").getEffectiveLevel() >= logging.ERROR
    if quiet or _is_terminal(sys.stderr):
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=unit_scale,
            dynamic_ncols=True,
            disable=quiet,
            leave=False,
            file=sys.stderr,
        )
    return LineProgress(desc=desc, unit=unit, total=total, interval=_interval())


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _interval() -> float:
    text = os.environ.get(INTERVAL_VARIABLE)
    if text is None:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        from xalign.errors import XalignError

        raise XalignError(f"{INTERVAL_VARIABLE}={text!r}: give a number of seconds, 0 or more")
    return value


class LineProgress:
    """Progress written as a plain line at most every ``interval`` seconds, and once at the end.

    Safe to update from another thread (a cluster's progress events arrive on one).
    """

    def __init__(
        self,
        *,
        desc: str,
        unit: str,
        total: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.desc = desc
        self.unit = unit
        self.total = total
        self.n = 0
        self.interval = interval
        self._write = write or _to_stderr
        self._clock = clock
        self._start = clock()
        self._last: float | None = None
        self._postfix = ""
        self._lock = threading.Lock()
        self._closed = False

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            now = self._clock()
            if self._last is None or now - self._last >= self.interval:
                self._last = now
                self._write(self._line(now))

    def refresh(self) -> None:
        """Nothing to redraw: lines are written as work is done."""

    def set_postfix_str(self, text: str, refresh: bool = False) -> None:
        with self._lock:
            self._postfix = text

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.n:  # nothing done (all reused) needs no line
                self._write(self._final(self._clock()))

    def _line(self, now: float) -> str:
        from tqdm import tqdm

        elapsed = now - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n:,}"
        if self.total:
            done += f"/{self.total:,} {self.unit}s ({100 * self.n / self.total:.0f}%)"
        else:
            done += f" {self._units(self.n)}"
        parts = [
            f"{self.desc}: {done}",
            f"{rate:,.1f} {self.unit}s/s",
            f"{tqdm.format_interval(elapsed)} elapsed",
        ]
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"about {tqdm.format_interval((self.total - self.n) / rate)} left")
        return ", ".join(parts) + self._suffix()

    def _final(self, now: float) -> str:
        from tqdm import tqdm

        elapsed = now - self._start
        rate = f" ({self.n / elapsed:,.1f} {self.unit}s/s)" if elapsed > 0 else ""
        took = tqdm.format_interval(elapsed)
        return f"{self.desc}: done, {self.n:,} {self._units(self.n)} in {took}{rate}" + self._suffix()

    def _units(self, n: int) -> str:
        return self.unit if n == 1 else f"{self.unit}s"

    def _suffix(self) -> str:
        return f"; {self._postfix}" if self._postfix else ""


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def persist_slabs(
    make: Callable[[], Any],
    store: Any,
    name: str | None,
    *,
    overwrite: bool,
    scheduler: str | None,
    desc: str,
    unit: str,
) -> Any:
    """:func:`xalign.persist` of the lazy result ``make()`` on ``scheduler``, with progress of its slabs."""
    import xalign
    from xalign.cli.cluster import compute_on

    bar = progress_bar(unit=unit, desc=desc)
    try:
        with compute_on(scheduler) as where:
            return xalign.persist(
                make(),
                store,
                name,
                overwrite=overwrite,
                on_slab=lambda _: bar.update(1),
                on_plan=lambda total: setattr(bar, "total", total),
                **where,
            )
    finally:
        bar.close()
