"""Progress people can read: a tqdm bar on a terminal, a heartbeat line everywhere else.

Long phases (encoder-cache build, training, dev evaluation) report through one
:class:`Progress`. On a terminal (and unless ``--no-progress``) that is a tqdm bar; in logs,
under nohup or SLURM (stderr not a terminal), or with ``--no-progress``, a plain line at least
every :data:`HEARTBEAT_SECONDS` with the rate and the time left. A time-limited run measures its
progress in seconds of the ``--max-train-minutes`` budget, not in steps it will never take.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

HEARTBEAT_SECONDS = 30.0  # longest silence in a log between two progress lines
KEEPALIVE_POLL_SECONDS = 1.0  # how often a keepalive thread checks for a due heartbeat


def format_seconds(seconds: float) -> str:
    """``1h02m``, ``4m05s`` or ``12s``.

    >>> format_seconds(3725), format_seconds(245), format_seconds(12.4)
    ('1h02m', '4m05s', '12s')
    """
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """Counts ``unit``s (and utterances) of one phase towards ``total``, or towards a time budget.

    ``say`` prints a heartbeat line; ``bar`` asks for a tqdm bar (only drawn on a terminal).

    >>> lines = []
    >>> p = Progress("dev", total=4, unit="utt", say=lines.append, bar=False, heartbeat_s=0.0)
    >>> p.update(2, utts=2); p.close()
    >>> lines[0].startswith("dev: 2/4 utt (")
    True
    """

    def __init__(self, desc: str, total: int, unit: str, say: Callable[[str], None], bar: bool,
                 initial: int = 0, budget_s: float | None = None, elapsed_s: float = 0.0,
                 heartbeat_s: float = HEARTBEAT_SECONDS):
        self.desc, self.total, self.unit, self.say = desc, total, unit, say
        self.initial, self.done, self.utts = initial, initial, 0
        self.budget_s = budget_s
        self.start = time.monotonic() - elapsed_s  # a resumed run counts its earlier time
        self.phase_start = time.monotonic()
        self.heartbeat_s = heartbeat_s
        self.last_line = time.monotonic()
        self.postfix: dict[str, Any] = {}
        self._lock = threading.Lock()  # a keepalive thread may print while update() does
        self.bar = self._tqdm(initial, elapsed_s) if bar and sys.stderr.isatty() else None

    def _tqdm(self, initial: int, elapsed_s: float) -> Any:
        if self.budget_s is None:
            return tqdm(total=self.total, initial=initial, desc=self.desc, unit=self.unit, dynamic_ncols=True, leave=False)
        fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of the time budget{postfix}"
        return tqdm(total=round(self.budget_s), initial=round(elapsed_s), desc=self.desc, bar_format=fmt,
                    dynamic_ncols=True, leave=False)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def update(self, n: int = 1, utts: int | None = None, **postfix: Any) -> None:
        """``n`` more units done (``utts`` utterances; by default ``n`` when counting utterances)."""
        self.done += n
        self.utts += (n if self.unit == "utt" else 0) if utts is None else utts
        self.postfix = postfix or self.postfix
        if self.bar is not None:
            if self.budget_s is None:
                self.bar.update(n)
            else:
                self.bar.update(min(round(self.elapsed()), round(self.budget_s)) - self.bar.n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
        else:
            self.beat()

    def beat(self) -> None:
        """A heartbeat line, if none came for ``heartbeat_s`` (and no bar is drawn)."""
        with self._lock:
            if self.bar is None and time.monotonic() - self.last_line >= self.heartbeat_s:
                self.say(self.line(self.postfix))
                self.last_line = time.monotonic()

    @contextlib.contextmanager
    def keepalive(self, interval_s: float | None = None) -> Iterator["Progress"]:
        """Within the block a thread calls :meth:`beat` every ``interval_s`` (default: each
        second, or the heartbeat when shorter), so a log still gets its line when one unit (a
        batch of a slow model) takes longer than the heartbeat."""
        stop = threading.Event()

        def run() -> None:
            poll = max(1e-3, min(KEEPALIVE_POLL_SECONDS, self.heartbeat_s) if interval_s is None else interval_s)
            while not stop.wait(poll):
                self.beat()

        thread = threading.Thread(target=run, name="asrtune-progress", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def time_left(self) -> float:
        """Seconds to the time budget, or to ``total`` at the rate so far."""
        if self.budget_s is not None:
            return max(0.0, self.budget_s - self.elapsed())
        rate = (self.done - self.initial) / max(time.monotonic() - self.phase_start, 1e-9)
        return (self.total - self.done) / rate if rate > 0 else float("inf")

    def line(self, postfix: dict[str, Any]) -> str:
        """``desc: done/total unit (x utts/s, <time> left) k=v ...``"""
        rate = self.utts / max(time.monotonic() - self.phase_start, 1e-9)
        left = self.time_left()
        left_text = "unknown" if left == float("inf") else format_seconds(left)
        extra = "".join(f" {k}={v}" for k, v in postfix.items())
        rate_text = f"{rate:.1f}" if rate >= 1 or rate == 0 else f"{rate:.2f}"  # a slow model still shows a rate
        return f"{self.desc}: {self.done}/{self.total} {self.unit} ({rate_text} utts/s, {left_text} left){extra}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
