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
    """uint64 hashes of ids (a numpy object or int array). Tests replace it to force collisions."""
    import pandas as pd

    return pd.util.hash_array(values, categorize=False)


def _non_null_values(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the non-null ids in the chunk, their values as numpy)."""
    import numpy as np
    import pyarrow.compute as pc

    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    positions = np.flatnonzero(valid)
    values = column.filter(pc.is_valid(column)).to_numpy(zero_copy_only=False)
    return positions, values


@dataclass
class DuplicateIds:
    """The ids that occur more than once in the partition (exact values), and their hashes."""

    hashes: np.ndarray  # sorted unique uint64 hashes of duplicated-looking ids (a pre-filter)
    values: set[Any]  # exact id values that occur at least twice

    def mask(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """True for the rows of ``column`` (one chunk) whose id occurs twice in the partition."""
        import numpy as np

        out = np.zeros(len(column), dtype=bool)
        if not self.values:
            return out
        positions, values = _non_null_values(column)
        candidates = np.isin(hash_ids(values), self.hashes)
        for position, value in zip(positions[candidates], values[candidates], strict=True):
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
    import numpy as np

    if not len(repeated):
        return DuplicateIds(repeated, set())
    counts: Counter[Any] = Counter()
    for chunk in id_chunks():
        _, values = _non_null_values(chunk)
        counts.update(values[np.isin(hash_ids(values), repeated)].tolist())
    values = {value for value, n in counts.items() if n > 1}
    return DuplicateIds(repeated, values)
