"""A bounded work queue: the backend's jobs (and graph writes) run one at a time on one thread."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


class Busy(Exception):
    """The queue is full; ``retry_after`` is a guess, in seconds, of when it has room."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


class WorkQueue:
    """At most ``capacity`` jobs waiting or running; more are refused (:class:`Busy`), never piled up.

    A job whose client went away still runs to its end (its results are not half-written) and holds
    its place until then.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kgc-serve-work")
        self._lock = threading.Lock()
        self._depth = 0
        self._seconds = 1.0  # a running mean of how long a job takes

    @property
    def depth(self) -> int:
        """Jobs waiting or running."""
        return self._depth

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self._depth >= self.capacity:
                raise Busy(max(1, round(self._seconds * self._depth)))
            self._depth += 1
        started = time.perf_counter()
        future: Future = self._pool.submit(fn, *args)
        future.add_done_callback(lambda _: self._done(started))
        return await asyncio.wrap_future(future)

    def _done(self, started: float) -> None:
        with self._lock:
            self._depth -= 1
            self._seconds = 0.8 * self._seconds + 0.2 * (time.perf_counter() - started)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
