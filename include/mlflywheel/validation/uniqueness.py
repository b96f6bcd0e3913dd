"""Uniqueness of ids across a whole partition, in bounded memory.

Great Expectations marks every occurrence of a duplicated id as unexpected. A partition is
validated chunk by chunk, so duplicates may sit in different chunks: a first pass reads only the
id column (Parquet column projection), hashes each id to a uint64 and sorts the hashes (8 bytes a
row); a second projected pass keeps the exact values of the few rows whose hash occurs twice and
counts them. A row's id is duplicated when that exact value occurs twice: a hash collision alone
never makes a unique id fail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa


def hash_ids(values: Any) -> np.ndarray:
    """uint64 hashes of ids (a pyarrow array without nulls). Tests replace it to force collisions.

    Strings and integers are hashed from Arrow's buffers in numpy (no Python object per id); other
    types through pandas' ``hash_array``."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = _one_array(values)
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        hashes = _hash_text(values)
        if hashes is not None:
            return hashes
    elif pa.types.is_integer(kind):
        return pd.util.hash_array(values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False))
    return pd.util.hash_array(values.to_numpy(zero_copy_only=False), categorize=False)


_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constants (golden ratio, splitmix64)
_MAX_WORDS = 32  # ids longer than 256 bytes: hashed by pandas (a loop per 8 bytes would be slow)


def _hash_text(values: Any) -> np.ndarray | None:
    """A 64-bit hash of each string of ``values`` from its bytes, read 8 at a time straight from the
    Arrow data buffer (the same value hashes alike in any chunk); None for ids over 256 bytes."""
    import numpy as np

    _, offsets_buffer, data_buffer = values.buffers()
    count = len(values)
    if count == 0:
        return np.empty(0, dtype=np.uint64)
    wide = values.type.id in (_large_type_ids())
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64 if wide else np.int32)
    offsets = offsets[values.offset : values.offset + count + 1].astype(np.int64)
    starts, lengths = offsets[:-1], np.diff(offsets)
    longest = int(lengths.max())
    if longest > 8 * _MAX_WORDS:
        return None
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    first, end = int(offsets[0]), int(offsets[-1])
    width = (longest + 7) // 8
    with np.errstate(over="ignore"):
        h = lengths.astype(np.uint64) * np.uint64(_MIX) + np.uint64(0x632BE59BD9B4E019)
        if longest and (lengths == longest).all():  # one length (the usual id): a matrix of words
            matrix = np.zeros((count, 8 * width), dtype=np.uint8)
            matrix[:, :longest] = data[first:end].reshape(count, longest)
            words = matrix.view("<u8")
            for word in range(width):
                h = _mix(h, words[:, word])
        elif longest:
            # 8 bytes past the last value, so that a word may be read from any value's start
            padded = np.zeros(end - first + 8, dtype=np.uint8)
            padded[: end - first] = data[first:end]
            windows = np.lib.stride_tricks.as_strided(padded, shape=(len(padded) - 7, 8), strides=(1, 1))
            starts = starts - first
            for word in range(width):
                left = lengths - 8 * word  # bytes of the value from this word on
                rows = np.flatnonzero(left > 0)
                chunk = np.ascontiguousarray(windows[starts[rows] + 8 * word]).view("<u8").ravel()
                short = left[rows] < 8  # the value's last word: keep only its own bytes (zero padded)
                if short.any():
                    bits = np.uint64(8) * left[rows][short].astype(np.uint64)
                    chunk[short] &= (np.uint64(1) << bits) - np.uint64(1)
                h[rows] = _mix(h[rows], chunk)
        # splitmix64's finaliser: every input bit reaches every output bit
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def _mix(h: np.ndarray, word: np.ndarray) -> np.ndarray:
    import numpy as np

    mixed = (h ^ word) * np.uint64(_MIX)
    return mixed ^ (mixed >> np.uint64(29))


def _large_type_ids() -> tuple[int, ...]:
    import pyarrow as pa

    return (pa.large_string().id, pa.large_binary().id)


def _non_null_values(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, Any]:
    """(positions of the non-null ids in the chunk, those ids as one pyarrow array)."""
    import numpy as np
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = _one_array(column)
    if not column.null_count:
        return np.arange(len(column)), column
    valid = column.is_valid()
    return np.flatnonzero(valid.to_numpy(zero_copy_only=False)), column.filter(valid)


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    """A chunked column as one array (a chunk's own column has one chunk: no copy then)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _among(hashes: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """``np.isin(hashes, sorted_unique)``: a table of the top 20 bits of the few repeated hashes
    rules out nearly every row with one lookup; binary search decides the rest."""
    import numpy as np

    out = np.zeros(len(hashes), dtype=bool)
    if not len(sorted_unique) or not len(hashes):
        return out
    shift = np.uint64(64 - 20)
    seen = np.zeros(1 << 20, dtype=bool)
    seen[sorted_unique >> shift] = True
    maybe = np.flatnonzero(seen[hashes >> shift])
    if maybe.size:
        at = np.minimum(np.searchsorted(sorted_unique, hashes[maybe]), len(sorted_unique) - 1)
        out[maybe] = sorted_unique[at] == hashes[maybe]
    return out


def _exact(values: Any) -> list[Any]:
    """The ids as Python values (for the few whose hash repeats): one conversion for both passes."""
    return values.to_pylist()


@dataclass
class DuplicateIds:
    """The ids that occur more than once in the partition (exact values), and their hashes."""

    hashes: np.ndarray  # sorted unique uint64 hashes of duplicated-looking ids (a pre-filter)
    values: set[Any]  # exact id values that occur at least twice

    @classmethod
    def none(cls) -> DuplicateIds:
        """No id occurs twice."""
        import numpy as np

        return cls(np.empty(0, dtype=np.uint64), set())

    @classmethod
    def of(cls, values: pa.ChunkedArray | pa.Array) -> DuplicateIds:
        """These ids (known to occur twice, e.g. as ingest recorded them)."""
        import numpy as np

        _, present = _non_null_values(values)
        return cls(np.unique(hash_ids(present)), set(_exact(present)))

    def mask(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """True for the rows of ``column`` (one chunk) whose id occurs twice in the partition."""
        import numpy as np
        import pyarrow as pa

        out = np.zeros(len(column), dtype=bool)
        if not self.values:
            return out
        positions, values = _non_null_values(column)
        candidates = np.flatnonzero(_among(hash_ids(values), self.hashes))
        exact = _exact(values.take(pa.array(candidates)))
        for position, value in zip(positions[candidates], exact, strict=True):
            out[position] = value in self.values
        return out


def find_duplicate_ids(id_chunks: Any, *, rows: int | None = None) -> DuplicateIds:
    """Duplicated ids of the partition; ``id_chunks`` is a callable returning a fresh iterator of
    the id column's chunks (pyarrow arrays), read twice; ``rows`` (the partition's, when known)
    lets the hashes fill one array in place."""
    import numpy as np

    chunks: Iterator[Any] = id_chunks()
    if rows is None:
        parts = [hash_column(c) for c in chunks]
        hashes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
        del parts
    else:
        hashes, filled = np.empty(rows, dtype=np.uint64), 0
        for chunk in chunks:
            part = hash_column(chunk)
            hashes[filled : filled + len(part)] = part
            filled += len(part)
        hashes = hashes[:filled]
    repeated = repeated_hashes(hashes)
    del hashes  # the second pass needs only the repeated ones
    return exact_duplicates(repeated, id_chunks)


def hash_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """uint64 hashes of a chunk's non-null ids."""
    return hash_ids(_non_null_values(column)[1])


def repeated_hashes(hashes: np.ndarray) -> np.ndarray:
    """The hashes that occur more than once, sorted and unique (``hashes`` is sorted in place)."""
    import numpy as np

    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


def exact_duplicates(repeated: np.ndarray, id_chunks: Any) -> DuplicateIds:
    """The ids whose exact value occurs twice among the rows whose hash is ``repeated``;
    ``id_chunks()``: a fresh iterator of the id column's chunks (read once, only if any repeat)."""

    if not len(repeated):
        return DuplicateIds(repeated, set())
    counts: Counter[Any] = Counter()
    for chunk in id_chunks():
        _, values = _non_null_values(chunk)
        counts.update(_exact(values.filter(_among(hash_ids(values), repeated))))
    values = {value for value, n in counts.items() if n > 1}
    return DuplicateIds(repeated, values)
