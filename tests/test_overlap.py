"""Overlapped stages: reading ahead and writing behind keep the order, raise the other thread's
error in the caller, and stop when the caller stops early."""

from __future__ import annotations

import threading

import pytest
from mlflywheel.overlap import read_ahead, write_behind


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


def test_write_behind_writes_in_order_in_another_thread_and_waits_at_the_end():
    written, threads = [], []

    def write(item):
        threads.append(threading.current_thread())
        written.append(item)

    with write_behind(write) as hand_over:
        for i in range(100):
            hand_over(i)
    assert written == list(range(100))
    assert all(t is not threading.current_thread() for t in threads)


def test_write_behind_raises_the_writers_error():
    def write(item):
        if item == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), write_behind(write) as hand_over:
        for i in range(50):
            hand_over(i)
    with pytest.raises(OSError, match="disk full"), write_behind(write) as hand_over:
        hand_over(3)  # the last item fails: raised on leaving the block


def test_write_behind_stops_on_the_callers_error():
    written = []
    with pytest.raises(KeyError), write_behind(written.append) as hand_over:
        hand_over(1)
        raise KeyError("the caller failed")
    assert written in ([], [1])
    assert not [t for t in threading.enumerate() if t.name == "flywheel-write-behind"]
