"""The streaming reader: a landed CSV file read block by block by pyarrow, in bounded memory.

It takes the common case: UTF-8 text (a byte order mark allowed), a comma or the delimiter named by
Excel's ``sep=`` first line, every record with the header's number of fields, no line break in a
cell outside a column declared multiline. Text in another encoding is first transcoded, streaming,
to a UTF-8 spool file (UTF-16/32 by byte order mark or NUL pattern, else Windows-1252 or Latin-1:
the exact reader's rules and notes). On anything else (NUL bytes, a quote left open, a ragged
record, a header the exact reader refuses, text that does not decode) it declines with
:class:`Declined`: the caller reads the file with the exact reader instead, or quarantines it
when it is too large to hold (see :mod:`mlflywheel.ingest`).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import hashlib
import io
import lzma
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from mlflywheel.ingest import exact

BLOCK_BYTES = 4 * 2**20  # bytes read at a time, and the most of pyarrow's first CSV block size
# pyarrow parses a CSV stream fastest in blocks of about 1 MiB (1M rows of the transactions day:
# 0.19 s at 1 MiB, 0.26 s at 4, 0.31 s at 16, one thread); a record longer than the block makes
# it refuse the block, so the file is read again with blocks 4 times larger, up to the last size.
CSV_BLOCK_BYTES = 2**20
MAX_CSV_BLOCK_BYTES = 64 * 2**20
_UTF8_BOM = b"\xef\xbb\xbf"


class Declined(Exception):  # not an error: the exact reader takes over
    """The streaming reader does not take this file; the message says why."""


class RecordTooLong(Declined):
    """A record longer than pyarrow's CSV block: the file is read again with larger blocks."""


def csv_block_sizes() -> list[int]:
    """pyarrow's CSV block sizes to try in turn (see :data:`CSV_BLOCK_BYTES`)."""
    size = min(BLOCK_BYTES, CSV_BLOCK_BYTES)
    sizes = [size]
    while size < MAX_CSV_BLOCK_BYTES:
        size = min(size * 4, MAX_CSV_BLOCK_BYTES)
        sizes.append(size)
    return sizes


@dataclass(frozen=True)
class Survey:
    """One pass over the landed file: its size, digest, first bytes, and whether it is UTF-8.

    The digest is taken by a thread of its own that reads the file while the caller goes on:
    :attr:`sha256` waits for it (and raises what the thread raised). Use the survey as a context
    manager (or call :meth:`close`) so that no hashing thread outlives the file's use."""

    size: int
    head: bytes
    utf8_error_at: int | None  # offset of the first byte that is not UTF-8, None if all is
    has_nul: bool
    has_quote: bool  # without a quote character no cell can hold a line break
    digest: FileDigest = field(repr=False, compare=False)

    @property
    def sha256(self) -> str:
        """The file's sha256 (hex); waits for the hashing thread."""
        return self.digest.hexdigest()

    def close(self) -> None:
        """Stop hashing if it still runs (the digest is no longer needed) and wait for the thread;
        raises what the thread raised before it was stopped."""
        self.digest.stop()
        self.digest.raise_failure()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the caller's exception goes on; the thread is stopped and joined all the same
            self.digest.stop()


class FileDigest:
    """The sha256 of a file, taken block by block by a thread with its own handle on the file."""

    def __init__(self, path: Path) -> None:
        self._stopping = threading.Event()
        self._hex: str | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._hash, args=(path,), name="flywheel-sha256", daemon=True)
        self._thread.start()

    def _hash(self, path: Path) -> None:
        try:
            digest = hashlib.sha256()  # releases the GIL on large blocks
            with open(path, "rb") as fh:
                while not self._stopping.is_set() and (block := fh.read(BLOCK_BYTES)):
                    digest.update(block)
            if not self._stopping.is_set():
                self._hex = digest.hexdigest()
        except BaseException as exc:  # noqa: BLE001 - kept, raised in the thread that asks for the digest
            self._failure = exc

    def hexdigest(self) -> str:
        self._thread.join()
        self.raise_failure()
        if self._hex is None:
            raise RuntimeError("the file's digest was abandoned (the survey was closed before it was taken)")
        return self._hex

    def stop(self) -> None:
        """Stop at the next block (a finished digest stays available) and wait for the thread."""
        if self._thread.is_alive():
            self._stopping.set()
        self._thread.join()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure


@dataclass
class CsvSource:
    """UTF-8 CSV text ready for pyarrow: where it is, its header, and how it was read."""

    path: Path
    header: list[str]
    delimiter: str
    skip_rows: int  # rows before the first record (the sep= line, the header)
    notes: list[str] = field(default_factory=list)
    quoted: bool = True  # the text may hold quoted cells (and so line breaks in cells)


def survey(path: Path) -> Survey:
    """The file's survey; its digest is still being taken when this returns (see :class:`Survey`)."""
    digest = FileDigest(path)
    try:
        size, head, error_at, has_nul, has_quote = _scan(path)
    except BaseException:
        digest.stop()
        raise
    return Survey(size, head, error_at, has_nul, has_quote, digest)


def _scan(path: Path) -> tuple[int, bytes, int | None, bool, bool]:
    """One read of the file: each block is checked for UTF-8, NUL and quotes."""
    size, head, error_at, has_nul, has_quote = 0, b"", None, False, False
    carry = b""  # the start of a character that the next block completes (at most 3 bytes)
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            if not size:
                head = block[:65536]
            has_nul = has_nul or b"\x00" in block
            has_quote = has_quote or b'"' in block
            if error_at is None:
                carry, error_at = _utf8_block(carry, block, size)
            size += len(block)
    if error_at is None and carry:  # the file ends inside a character
        error_at = size - len(carry) + (_utf8_error_in(carry, final=True) or 0)
    return size, head, error_at, has_nul, has_quote


def _utf8_block(carry: bytes, block: bytes, at: int) -> tuple[bytes, int | None]:
    """UTF-8 check of ``block`` (at offset ``at`` of the file) after ``carry``, the incomplete
    character the previous block ended with: the next carry, and the offset of the first byte
    that is not UTF-8 (None if there is none so far). Arrow validates; Python's decoder, on the
    rare invalid block only, finds the offset (so it is the one Python's decoder gives)."""
    start = 0
    if carry:  # the character that spans the blocks, checked on its own (a few bytes)
        start = min(_utf8_length(carry[0]) - len(carry), len(block))
        joint = carry + block[:start]
        if len(joint) < _utf8_length(joint[0]):  # a block shorter than the rest of the character
            return joint, None
        if (bad := _utf8_error_in(joint, final=True)) is not None:
            return b"", at - len(carry) + bad
    end = len(block) - _incomplete_tail(block, start)
    # final: a character cut short before ``end`` is followed by a byte that does not go on with it
    if not _arrow_utf8_valid(block, start, end):
        bad = _utf8_error_in(block[start:end], final=True)
        if bad is not None:
            return b"", at + start + bad
    return block[end:], None


def _utf8_length(lead: int) -> int:
    """Bytes of the character that starts with byte ``lead`` (1 for a byte that starts none)."""
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 1


def _incomplete_tail(block: bytes, start: int) -> int:
    """Bytes at the end of ``block`` (after ``start``) that begin a character the block does not complete."""
    for back in range(1, min(3, len(block) - start) + 1):
        byte = block[-back]
        if byte < 0x80:  # ASCII: a complete character
            return 0
        if byte >= 0xC0:  # the lead byte of the last character
            return back if _utf8_length(byte) > back else 0
    return 0  # continuation bytes only: complete, or invalid (then Arrow says so)


def _arrow_utf8_valid(block: bytes, start: int, end: int) -> bool:
    """Whether ``block[start:end]`` is UTF-8, by Arrow's validator (no copy, no str built)."""
    import numpy as np
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([start, end], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(block)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _utf8_error_in(data: bytes, *, final: bool = False) -> int | None:
    """Python's decoder: offset in ``data`` of the first byte that is not UTF-8, None if there is
    none (an incomplete character at the end counts only when ``final``)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def csv_source(path: Path, surveyed: Survey, spool: Path) -> CsvSource:
    """The landed file as UTF-8 CSV text with its header, or :class:`Declined`."""
    text_path, notes = _utf8_text(path, surveyed, spool)
    with open(text_path, "rb") as fh:
        head = fh.read(BLOCK_BYTES)
    head = head.removeprefix(_UTF8_BOM)
    lines = io.StringIO(head.decode("utf-8", errors="replace"), newline="").readlines()
    if not lines or not lines[0].strip():
        raise Declined("no header on the first line (an empty file, or blank lines first)")
    delimiter, skip = ",", 0
    if match := exact._SEP_LINE.match(lines[0].rstrip("\r\n")):
        delimiter, skip = match.group(1), 1
    if len(lines) <= skip or not lines[skip].strip() or (len(lines) == skip + 1 and len(head) == BLOCK_BYTES):
        raise Declined("no complete header line")
    line = lines[skip].rstrip("\r\n")
    if line.count('"') % 2:
        raise Declined("a quoted header cell runs over the line")
    names = next(csv.reader([line], delimiter=delimiter, strict=False))
    header = [name if name else f"Unnamed: {i}" for i, name in enumerate(names)]
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise Declined(f"the header names column {twice[0]!r} more than once")
    reserved = [name for name in header if name in exact.PIPELINE_COLUMNS]
    if reserved:
        raise Declined(f"the file has a column named {reserved[0]!r}, a name reserved for the pipeline's meta columns")
    if skip:
        notes = [*notes, "the first line names the delimiter (Excel's sep=): it is not a record"]
    quoted = surveyed.has_quote or text_path != path  # a transcoded file was not surveyed
    return CsvSource(text_path, header, delimiter, skip + 1, notes, quoted=quoted)


def _utf8_text(path: Path, surveyed: Survey, spool: Path) -> tuple[Path, list[str]]:
    """A UTF-8 file with the landed text (the file itself, or a transcoded spool file) and notes."""
    head = surveyed.head
    kind = exact._container_kind(head)
    if kind is not None:
        raise Declined(f"{kind} where plain CSV text was expected")
    for bom, codec, name in exact._BOMS:
        if head.startswith(bom):
            if codec != "utf-8":
                return _transcode(path, spool, codec, skip=len(bom)), [f"decoded as {name} (byte order mark)"]
            if surveyed.utf8_error_at is not None:
                raise Declined(f"not valid UTF-8 text despite its byte order mark (byte {surveyed.utf8_error_at})")
            if surveyed.has_nul:
                raise Declined("binary content (NUL bytes) in a text file")
            return path, []
    utf16 = exact._utf16_without_bom(head)
    if utf16 is not None:
        codec, name = utf16
        return _transcode(path, spool, codec), [f"decoded as {name} (no byte order mark; recognised by its NUL bytes)"]
    if surveyed.has_nul:
        raise Declined("binary content (NUL bytes) in a text file")
    if surveyed.utf8_error_at is None:
        return path, []
    with open(path, "rb") as fh:
        fh.seek(surveyed.utf8_error_at)
        bad = f"byte 0x{fh.read(1)[0]:02x} at offset {surveyed.utf8_error_at}"
    for codec, name in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
        try:
            spooled = _transcode(path, spool, codec, binary_check=bad)
        except UnicodeDecodeError:
            continue
        return spooled, [f"not UTF-8 ({bad} is invalid): decoded as {name}; check accented text"]
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _transcode(path: Path, spool: Path, codec: str, *, skip: int = 0, binary_check: str | None = None) -> Path:
    """``path``'s text in ``codec`` rewritten as UTF-8, block by block. ``binary_check``: refuse
    control characters (text read by fallback); raises UnicodeDecodeError then, else Declined."""
    out = spool / "landing-utf8.csv"
    decoder = codecs.getincrementaldecoder(codec)()
    with open(path, "rb") as src, open(out, "w", encoding="utf-8", newline="") as dst:
        src.seek(skip)
        while True:
            block = src.read(BLOCK_BYTES)
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                if binary_check is not None:
                    raise
                raise Declined(f"not valid {codec} text ({exc.reason})") from None
            if "\x00" in text:
                raise Declined("binary content (NUL bytes) in a text file")
            if binary_check is not None and (control := exact._CONTROL.search(text)):
                raise Declined(f"binary content: not UTF-8 text ({binary_check}) and control character {control.group()!r}")
            dst.write(text)
            if not block:
                return out


def read_batches(source: CsvSource, multiline: Iterable[str] = (), block_bytes: int | None = None) -> Iterator[Any]:
    """Record batches of text (null where a cell is empty), one per block of ``block_bytes``
    (default :data:`BLOCK_BYTES`); raises :class:`Declined` as soon as a record is not one the
    exact reader would take as is (:class:`RecordTooLong`, for a caller that tries the sizes of
    :func:`csv_block_sizes`, when a record is longer than ``block_bytes`` and a larger size remains)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    problems: list[str] = []

    def on_invalid_row(row: Any) -> str:
        if row.text is not None and not row.text.strip():
            return "skip"  # a blank line (spaces only)
        where = f"line {row.number}" if row.number else "a record"
        problems.append(f"{where} has {row.actual_columns} fields, the header has {row.expected_columns}")
        return "error"

    header = source.header
    multiline = set(multiline)
    # Line breaks in cells need quotes: a file without any is parsed (faster) line by line.
    checked = [i for i, name in enumerate(header) if name not in multiline] if source.quoted else []
    try:  # pyarrow reads the first block on opening
        reader = pa_csv.open_csv(
            source.path,
            read_options=pa_csv.ReadOptions(
                column_names=header, skip_rows=source.skip_rows, block_size=block_bytes or BLOCK_BYTES
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=source.delimiter, newlines_in_values=source.quoted, invalid_row_handler=on_invalid_row
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        for batch in reader:
            for i in checked:  # a line break in a cell: a quote left open merged records
                if _has_line_break(batch.column(i)):
                    raise Declined(
                        f"a quoted cell of column {header[i]} holds a line break: a quote left open merges "
                        "records (cells may hold line breaks only in a column declared multiline)"
                    )
            if len(header) == 1:  # blank lines ("   ", '""') are no records, as in the exact reader
                column = batch.column(0)
                blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), True)
                batch = batch.filter(pc.invert(blank))
            yield batch
    except pa.ArrowInvalid as exc:
        too_long = "straddl" in str(exc) or "larger than block size" in str(exc)  # a record, or the header
        if not problems and too_long and block_bytes is not None and block_bytes < MAX_CSV_BLOCK_BYTES:
            raise RecordTooLong(f"a record longer than {block_bytes} bytes") from None
        raise Declined(problems[0] if problems else f"pyarrow cannot read it: {exc}") from None


def rebatch(batches: Iterable[Any], rows: int) -> Iterator[Any]:
    """``batches`` regrouped into record batches of exactly ``rows`` rows (the last one may be shorter)."""
    for table in rechunk(batches, rows):
        yield from table.combine_chunks().to_batches()


def rechunk(batches: Iterable[Any], rows: int) -> Iterator[Any]:
    """``batches`` regrouped into tables of exactly ``rows`` rows (the last one may be shorter):
    slices of the blocks pyarrow read, each column a chunked array, no copy (:func:`rebatch`
    copies them into one record batch each)."""
    import pyarrow as pa

    pending: list[Any] = []
    count = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count < rows:
            continue
        table = pa.Table.from_batches(pending)
        start = 0
        while count - start >= rows:
            yield table.slice(start, rows)
            start += rows
        rest = table.slice(start)
        pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def count_records(path: Path, head: bytes) -> int:
    """Records of a file that no reader takes, counted streaming: the non-blank lines after the
    header (of the decompressed text for a compressed file; the rows of a Parquet file)."""
    if head.startswith(exact.PARQUET_MAGIC):
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # noqa: BLE001 - pyarrow raises several types for a broken file
            return 0
    if exact._container_kind(head) is None and exact._CONTROL.search(head.decode("latin-1").replace("\x00", "")):
        return 0  # binary content, as the exact reader counts it
    try:
        lines = _count_lines(_decompressed_blocks(path, head))
    except (zlib.error, OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, KeyError):
        return 0
    return max(0, lines - 1)


def _decompressed_blocks(path: Path, head: bytes) -> Iterator[bytes]:
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if len(names) != 1:
                return
            with archive.open(names[0]) as member:
                while block := member.read(BLOCK_BYTES):
                    yield block
        return
    decompressor: Any = None
    if head.startswith(exact.GZIP_MAGIC):
        decompressor = zlib.decompressobj(wbits=31)
    elif head.startswith(b"BZh"):
        decompressor = bz2.BZ2Decompressor()
    elif head.startswith(b"\xfd7zXZ\x00"):
        decompressor = lzma.LZMADecompressor()
    elif exact._container_kind(head) is not None:
        return
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            if decompressor is None:
                yield block
                continue
            try:
                yield decompressor.decompress(block)
            except (zlib.error, OSError, EOFError, lzma.LZMAError):
                return  # a truncated or broken stream: what was decompressed counts
            if getattr(decompressor, "eof", False):
                return


def _count_lines(blocks: Iterable[bytes]) -> int:
    count, tail = 0, b""
    for block in blocks:
        lines = (tail + block).replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        tail = lines.pop()  # a line may go on in the next block
        count += sum(1 for line in lines if line.strip(b" \t\x00"))
    return count + bool(tail.strip(b" \t\x00"))


def _has_line_break(column: Any) -> bool:
    """Whether a cell of a string column holds a line break (one scan of its character data)."""
    import numpy as np

    _, offsets, data = column.buffers()
    if data is None or not len(column):
        return False
    bounds = np.frombuffer(offsets, dtype=np.int32)[column.offset : column.offset + len(column) + 1]
    text = np.frombuffer(data, dtype=np.uint8)[bounds[0] : bounds[-1]]
    return bool(np.any((text == 10) | (text == 13)))
