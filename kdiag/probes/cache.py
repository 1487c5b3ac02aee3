"""A bounded, thread-safe, single-flight cache shared by the probe clients (DNS, TLS, HTTP).

Rules run concurrently and ask the same questions (two rules handshake with the same address; every rule asks
for the name's A record): the first caller computes, the others wait for its result, so each distinct
question costs one round trip. The bound keeps `kdiag scan` and `kdiag serve` flat in memory; `clear()` lets
long-running front ends (`serve`, `--wait`) see fresh data.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlightCache(Generic[K, V]):
    def __init__(self, max_size: int = 4096) -> None:
        self.max_size = max_size
        self.hits = 0
        self._entries: OrderedDict[K, Future[V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, compute: Callable[[], V]) -> V:
        """The cached value for `key`, computing it once (in the calling thread) if nobody has yet."""
        with self._lock:
            fut = self._entries.get(key)
            owner = fut is None
            if fut is None:
                fut = Future()
                self._entries[key] = fut
                if len(self._entries) > self.max_size:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
                self.hits += 1
        if owner:
            try:
                fut.set_result(compute())
            except BaseException as exc:  # never leave waiters hanging; and do not cache the failure
                fut.set_exception(exc)
                with self._lock:
                    if self._entries.get(key) is fut:
                        del self._entries[key]
                raise
        return fut.result()

    def ready(self, key: K) -> bool:
        """Is a value for `key` cached (computed, not merely being computed)? Counts nothing."""
        fut = self._entries.get(key)
        return fut is not None and fut.done() and fut.exception() is None

    def put_if_absent(self, key: K, value: V) -> None:
        """Cache `value` for `key` unless somebody already cached or is computing it (a prefetched answer
        never replaces one a lookup got)."""
        with self._lock:
            if key in self._entries:
                return
            fut: Future[V] = Future()
            fut.set_result(value)
            self._entries[key] = fut
            if len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
