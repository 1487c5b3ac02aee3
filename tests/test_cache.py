"""The probe clients' shared cache: one computation per key however many threads ask, bounded, clearable."""

from __future__ import annotations

import threading
import time

import pytest

from kdiag.probes.cache import SingleFlightCache


def test_concurrent_callers_share_one_computation():
    cache: SingleFlightCache[str, int] = SingleFlightCache()
    calls = []
    start = threading.Barrier(6)

    def slow() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    results = []

    def ask() -> None:
        start.wait()
        results.append(cache.get("k", slow))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 6
    assert len(calls) == 1 and cache.hits == 5


def test_bounded_least_recently_used_first():
    cache: SingleFlightCache[int, int] = SingleFlightCache(max_size=3)
    for i in range(3):
        cache.get(i, lambda i=i: i)
    cache.get(0, lambda: -1)  # touch 0: now 1 is the least recently used
    cache.get(3, lambda: 3)
    assert len(cache) == 3
    assert cache.get(1, lambda: 100) == 100  # 1 was evicted and is computed again
    assert cache.get(0, lambda: -1) == 0


def test_a_failure_reaches_every_waiter_and_is_not_cached():
    cache: SingleFlightCache[str, int] = SingleFlightCache()

    def boom() -> int:
        raise RuntimeError("resolver exploded")

    with pytest.raises(RuntimeError):
        cache.get("k", boom)
    assert cache.get("k", lambda: 7) == 7


def test_clear_forgets_everything():
    cache: SingleFlightCache[str, int] = SingleFlightCache()
    cache.get("k", lambda: 1)
    cache.clear()
    assert len(cache) == 0 and cache.get("k", lambda: 2) == 2
