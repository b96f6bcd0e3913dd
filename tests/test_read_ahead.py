"""Reading ahead: same items, same order, the producer's exception where its item would be, and a
consumer that stops early stops the producer."""

from __future__ import annotations

import threading

import pytest
from mlflywheel.read_ahead import read_ahead


def test_items_come_in_order_from_another_thread():
    threads = []

    def items():
        for i in range(50):
            threads.append(threading.current_thread())
            yield i

    assert list(read_ahead(items(), depth=2)) == list(range(50))
    assert threads and all(t is not threading.current_thread() for t in threads)
    assert list(read_ahead(iter([]))) == []


def test_the_producers_exception_is_raised_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("broken block")

    seen = read_ahead(items())
    assert (next(seen), next(seen)) == (1, 2)
    with pytest.raises(ValueError, match="broken block"):
        next(seen)


def test_stopping_early_stops_the_producer_and_reads_at_most_depth_ahead():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    for item in read_ahead(items(), depth=1):
        if item == 3:
            break
    assert 4 <= len(produced) <= 6  # the consumed four, one waiting, one being handed over
    assert not [t for t in threading.enumerate() if t.name == "flywheel-read-ahead"]
