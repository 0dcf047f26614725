"""Dynamic batching: segments of concurrent requests share one model call, in one worker thread.

The recogniser is not thread-safe and decodes a batch of clips far faster than the same clips
one by one, so every model call goes through a :class:`Batcher`: request threads ``submit`` their
segments and block on a future; the single worker thread takes the oldest waiting job, lets
others with the same key (same prompt, same decode method) join it for up to ``max_wait_s`` or
until ``max_batch_size`` clips, runs them as one call and hands each job its share of the results.

:class:`QueuedRecognizer` wraps that in the recogniser interface, so the long-form code that
segments a request's audio (VAD) runs unchanged in the request's thread while its model calls
are batched with everyone else's. :class:`Admission` bounds how many requests are inside at once.

>>> batcher = Batcher(lambda key, clips: [f"{key}:{c}" for c in clips], max_batch_size=4, max_wait_s=0.0)
>>> batcher.start()
>>> batcher.submit("k", [1, 2]).result()
['k:1', 'k:2']
>>> batcher.close()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

log = logging.getLogger(__name__)

RunBatch = Callable[[Hashable, list], list]  # (key, clips) -> one result per clip, in order


@dataclass
class _Job:
    key: Hashable
    clips: list
    future: Future = field(default_factory=Future)


_STOP = object()  # put on the queue by close(): everything submitted before it is still decoded


class Batcher:
    """One worker thread that runs ``run(key, clips)`` on batches gathered from concurrent jobs."""

    def __init__(self, run: RunBatch, max_batch_size: int = 16, max_wait_s: float = 0.02):
        self.run, self.max_batch_size, self.max_wait_s = run, max_batch_size, max_wait_s
        self._queue: queue.Queue = queue.Queue()
        self._deferred: deque[_Job] = deque()  # taken off the queue but not batchable with the last batch
        self._thread = threading.Thread(target=self._loop, name="asrtune-model", daemon=True)
        self._closed = False
        self.calls = 0  # model calls made (batches), for /health and tests
        self.clips = 0  # clips decoded

    def start(self) -> None:
        self._thread.start()

    def submit(self, key: Hashable, clips: Sequence) -> Future:
        """Queue ``clips`` for decoding with ``key``; the future gets one result per clip."""
        if self._closed:
            raise RuntimeError("the model worker has stopped")
        job = _Job(key, list(clips))
        if not job.clips:
            job.future.set_result([])
            return job.future
        self._queue.put(job)
        return job.future

    def close(self, timeout: float | None = None) -> None:
        """Stop taking jobs, finish every job already queued, then stop the worker thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- worker thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        stopping = False
        while True:
            if self._deferred:
                first = self._deferred.popleft()
            elif stopping:
                return
            else:
                first = self._queue.get()
                if first is _STOP:
                    stopping = True
                    continue
            batch, stopping = self._gather(first, stopping)
            self._execute(batch)

    def _gather(self, first: _Job, stopping: bool) -> tuple[list[_Job], bool]:
        """``first`` plus compatible jobs: deferred ones, then new ones until the wait runs out."""
        batch, size = [first], len(first.clips)
        for job in list(self._deferred):
            if job.key == first.key and size + len(job.clips) <= self.max_batch_size:
                self._deferred.remove(job)
                batch.append(job)
                size += len(job.clips)
        deadline = time.monotonic() + self.max_wait_s
        later: list[_Job] = []
        while size < self.max_batch_size and not stopping:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is _STOP:
                stopping = True
            elif job.key == first.key and size + len(job.clips) <= self.max_batch_size:
                batch.append(job)
                size += len(job.clips)
            else:
                later.append(job)
        self._deferred.extend(later)
        return batch, stopping

    def _execute(self, batch: list[_Job]) -> None:
        clips = [clip for job in batch for clip in job.clips]
        try:
            results = self._call(batch[0].key, clips)
        except Exception as e:  # handed to the request, which answers with an error
            if len(batch) == 1:
                batch[0].future.set_exception(e)
                return
            # One bad request must not sink its batch-mates: run each job on its own.
            for job in batch:
                self._execute([job])
            return
        start = 0
        for job in batch:
            job.future.set_result(results[start : start + len(job.clips)])
            start += len(job.clips)

    def _call(self, key: Hashable, clips: list) -> list:
        results = list(self.run(key, clips))
        self.calls += 1
        self.clips += len(clips)
        if len(results) != len(clips):
            raise RuntimeError(f"the recogniser returned {len(results)} results for {len(clips)} clips")
        return results


class QueuedRecognizer:
    """The loaded recogniser as a request sees it: same attributes, model calls through the batcher.

    ``key`` says which jobs may share a batch (the server uses the request's prompt and language).
    """

    def __init__(self, recognizer: Any, batcher: Batcher, key: Hashable = None):
        self._recognizer, self._batcher, self._key = recognizer, batcher, key

    def transcribe(self, audios: Sequence) -> list[str]:
        return self._batcher.submit((self._key, "transcribe", False), audios).result()

    def decode(self, audios: Sequence, word_timestamps: bool = False) -> list:
        return self._batcher.submit((self._key, "decode", bool(word_timestamps)), audios).result()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._recognizer, name)


class Admission:
    """At most ``limit`` requests inside the server at once; the rest are turned away (503).

    >>> gate = Admission(1)
    >>> gate.try_enter(), gate.try_enter()
    (True, False)
    >>> gate.leave(); gate.in_flight
    0
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight = 0
        self._changed = threading.Condition()

    def try_enter(self) -> bool:
        with self._changed:
            if self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            self._changed.notify_all()
            return True

    def leave(self) -> None:
        with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    def wait_for(self, in_flight: int, timeout: float | None = None) -> bool:
        """Block until exactly ``in_flight`` requests are inside (e.g. 0 = idle); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.in_flight == in_flight, timeout)
