"""Reading ahead: the next items of an iterator produced by a thread while the caller works on the
current one. pyarrow releases the GIL while it parses a CSV block or decodes a Parquet row group,
and while it casts and writes: with two cores, the next chunk is read while this one is checked
and written. At most ``depth`` items wait, so memory stays bounded by the chunk size."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
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
