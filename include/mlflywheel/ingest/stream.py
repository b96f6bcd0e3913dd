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
import queue
import threading
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflywheel.ingest import exact

BLOCK_BYTES = 4 * 2**20  # bytes read at a time, and pyarrow's CSV block size
_UTF8_BOM = b"\xef\xbb\xbf"


class Declined(Exception):  # not an error: the exact reader takes over
    """The streaming reader does not take this file; the message says why."""


@dataclass(frozen=True)
class Survey:
    """One pass over the landed file: its size, digest, first bytes, and whether it is UTF-8."""

    size: int
    sha256: str
    head: bytes
    utf8_error_at: int | None  # offset of the first byte that is not UTF-8, None if all is
    has_nul: bool
    has_quote: bool  # without a quote character no cell can hold a line break


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
    digest = hashlib.sha256()
    # The digest is taken by a thread while this one scans (hashlib releases the GIL on large blocks).
    hashing: queue.Queue[bytes | None] = queue.Queue(maxsize=4)

    def hash_blocks() -> None:
        while (block := hashing.get()) is not None:
            digest.update(block)

    hasher = threading.Thread(target=hash_blocks, name="flywheel-sha256", daemon=True)
    hasher.start()
    try:
        size, head, error_at, has_nul, has_quote = _scan(path, hashing)
    finally:
        hashing.put(None)
        hasher.join()
    return Survey(size, digest.hexdigest(), head, error_at, has_nul, has_quote)


def _scan(path: Path, hashing: queue.Queue[bytes | None]) -> tuple[int, bytes, int | None, bool, bool]:
    """One read of the file: each block goes to ``hashing``, and is checked for UTF-8, NUL and quotes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    size, head, error_at, has_nul, has_quote = 0, b"", None, False, False
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            if not size:
                head = block[:65536]
            hashing.put(block)
            has_nul = has_nul or b"\x00" in block
            has_quote = has_quote or b'"' in block
            if error_at is None:
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    error_at = size - pending + exc.start
            size += len(block)
    if error_at is None:
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            error_at = size - pending + exc.start
    return size, head, error_at, has_nul, has_quote


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


def read_batches(source: CsvSource, multiline: Iterable[str] = ()) -> Iterator[Any]:
    """Record batches of text (null where a cell is empty), one per block of the file; raises
    :class:`Declined` as soon as a record is not one the exact reader would take as is."""
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
            read_options=pa_csv.ReadOptions(column_names=header, skip_rows=source.skip_rows, block_size=BLOCK_BYTES),
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
