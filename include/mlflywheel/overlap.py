"""Stages of a chunked pass overlapped with threads: :func:`read_ahead` produces the next items of
an iterator while the caller works on the current one, :func:`write_behind` writes the previous
one while the caller makes the next. pyarrow releases the GIL while it parses a CSV block, decodes
or encodes a Parquet row group and computes: with two cores, reading, checking and writing run at
once. At most ``depth`` items wait at each stage, so memory stays bounded by the chunk size."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def read_ahead(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """``items`` in order, produced ``depth`` ahead by a thread; an exception the producer meets is
    raised here, where the item would have come. Leaving the loop early stops the producer."""
    waiting: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(entry: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                waiting.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            hand_over((_END, exc))
            return
        hand_over((_END, None))

    producer = threading.Thread(target=produce, name="flywheel-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, error = waiting.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        producer.join()


@contextlib.contextmanager
def write_behind(write: Callable[[T], object], depth: int = 1) -> Iterator[Callable[[T], None]]:
    """A function that hands an item to a thread calling ``write(item)``, in order. The thread's
    error is raised at the next hand-over or on leaving the block, which waits for the last write;
    leaving on an error of the block's own drops the items not yet written."""
    waiting: queue.Queue[object] = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []
    stop = threading.Event()

    def consume() -> None:
        while True:
            item = waiting.get()
            if item is _END or failed or stop.is_set():
                if item is _END:
                    return
                continue  # after an error: drain what was handed over, write nothing
            try:
                write(item)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                failed.append(exc)

    def hand_over(item: T) -> None:
        if failed:
            raise failed[0]
        waiting.put(item)

    writer = threading.Thread(target=consume, name="flywheel-write-behind", daemon=True)
    writer.start()
    try:
        yield hand_over
    except BaseException:
        stop.set()
        waiting.put(_END)
        writer.join()
        raise
    waiting.put(_END)
    writer.join()
    if failed:
        raise failed[0]
