"""The exact reader: a landed file held in memory, split into records by Python's csv module.

It is the reference for every odd file (encodings, NUL bytes, Excel's ``sep=`` line, quotes left
open, ragged records, bad headers) and names the problem of an unreadable one; the streaming
reader (:mod:`mlflywheel.ingest.stream`) hands a file to it when it declines one, as long as the
file is small enough to hold (:data:`EXACT_READER_MAX_BYTES`).
"""

from __future__ import annotations

import bz2
import csv
import io
import lzma
import re
import zipfile
import zlib
from dataclasses import dataclass, field

import pandas as pd

from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import frame_from_parquet
from mlflywheel.lake.keys import (
    COERCION_ERRORS_COLUMN,
    QUARANTINE_REASONS_COLUMN,
    ROW_COLUMN,
    ROW_ID_COLUMN,
)

# The exact reader holds the file, its text and its records in memory (about 14x the file's
# size): above this size a file the streaming reader declines is quarantined instead.
EXACT_READER_MAX_BYTES = 64 * 2**20
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
UNREADABLE_KIND = "unreadable_file"  # quarantine manifest "kind" of a whole-file quarantine
# The pipeline's own meta columns: a landed column of one of these names could not be told apart.
PIPELINE_COLUMNS = (ROW_COLUMN, COERCION_ERRORS_COLUMN, ROW_ID_COLUMN, QUARANTINE_REASONS_COLUMN)

# Containers and binary formats recognised by their first bytes (a CSV delivery must be plain text).
_MAGIC = (
    (GZIP_MAGIC, "gzip-compressed data"),
    (PARQUET_MAGIC, "Parquet data (magic bytes PAR1)"),
    (b"PK\x03\x04", "a zip archive (or an .xlsx workbook)"),
    (b"BZh", "bzip2-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"\xd0\xcf\x11\xe0", "an OLE2 document (an .xls workbook)"),
)
_BOMS = (  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (b"\xff\xfe\x00\x00", "utf-32-le", "UTF-32-LE"),
    (b"\x00\x00\xfe\xff", "utf-32-be", "UTF-32-BE"),
    (b"\xef\xbb\xbf", "utf-8", "UTF-8"),
    (b"\xff\xfe", "utf-16-le", "UTF-16-LE"),
    (b"\xfe\xff", "utf-16-be", "UTF-16-BE"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # not tab, line feed, carriage return
_SEP_LINE = re.compile(r"^sep=(.)\s*$", re.IGNORECASE)  # Excel's first line naming the delimiter


class UnreadableFileError(ValueError):
    """The landed file is not a readable table: it is quarantined, not retried.

    ``records``: the records the file holds, when they could be counted."""

    def __init__(self, message: str, *, records: int | None = None) -> None:
        super().__init__(message)
        self.records = records


@dataclass
class LandingTable:
    """The landed file as a table of text, and notes on how it was read (e.g. its encoding)."""

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def read_landing_table(data: bytes, landing_format: str = "csv") -> pd.DataFrame:
    """The landed file as a table of text (null where a cell is empty); raises
    :class:`UnreadableFileError` if it is not a readable table."""
    if landing_format == "parquet":
        return _parquet_as_text(data)
    return _read_csv(data, multiline=()).table


def read_landing(data: bytes, spec: DatasetSpec) -> LandingTable:
    """The landed file of ``spec``'s format as a table of text, with notes on how it was read.

    Raises :class:`UnreadableFileError` (with the records counted where possible) for a file that
    is no readable table: another format than the spec's, binary content (NUL bytes), a broken
    record structure (a record with more or fewer fields than the header, a quote left open
    across lines), a header naming a column twice or naming one of the pipeline's meta columns.
    """
    if spec.landing_format == "parquet":
        landed = LandingTable(_parquet_as_text(data))
    else:
        multiline = tuple(c.name for c in spec.columns if c.multiline)
        landed = _read_csv(data, multiline=multiline)
    reserved = [c for c in landed.table.columns if c in PIPELINE_COLUMNS]
    if reserved:
        raise UnreadableFileError(
            f"the file has a column named {reserved[0]!r}, a name reserved for the pipeline's meta columns",
            records=len(landed.table),
        )
    return landed


# --- CSV: decoding, records, header --------------------------------------------------------------


def _container_kind(data: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    return None


def _decode(data: bytes) -> tuple[str, list[str]]:
    """The text of a CSV delivery, and a note when it was not plain UTF-8.

    A byte order mark names the encoding (UTF-8, UTF-16, UTF-32); without one, UTF-16 is recognised
    by its NUL pattern; text that is not UTF-8 is read as Windows-1252 (else Latin-1), with a note.
    """
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                raise UnreadableFileError(
                    f"not valid {name} text despite its byte order mark ({exc.reason} at byte {exc.start})"
                ) from None
            return text, ([] if codec == "utf-8" else [f"decoded as {name} (byte order mark)"])
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        codec, name = utf16
        try:
            return data.decode(codec), [f"decoded as {name} (no byte order mark; recognised by its NUL bytes)"]
        except UnicodeDecodeError:
            pass  # not UTF-16 after all: the NUL check below refuses it
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        bad = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
    for codec, name in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        control = _CONTROL.search(text)
        if control and control.group() != "\x00":
            raise UnreadableFileError(
                f"binary content: not UTF-8 text ({bad}) and control character "
                f"{control.group()!r} at character {control.start()}",
                records=0,
            )
        return text, [f"not UTF-8 ({bad} is invalid): decoded as {name}; check accented text"]
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    sample = data[:4096]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    even, odd = sample[0::2], sample[1::2]
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.4 and even_nul < 0.05:
        return "utf-16-le", "UTF-16-LE"
    if even_nul > 0.4 and odd_nul < 0.05:
        return "utf-16-be", "UTF-16-BE"
    return None


@dataclass
class _Scan:
    """A CSV text split into records by the csv module, each with its physical lines."""

    header: list[str] | None
    rows: list[list[str]]
    records: int  # records truly in the file: a record merged across lines counts once per line
    problems: list[str]
    sep_line: bool = False  # the first line was Excel's "sep=<delimiter>"


def _scan_csv(text: str, multiline: tuple[str, ...]) -> _Scan:
    """Records of ``text``; never raises. A record that spans several physical lines is one
    only if every cell with a line break is in a ``multiline`` column: otherwise a quote was
    left open, and each of the lines it swallowed counts as a record of the file."""
    delimiter = ","
    lines = io.StringIO(text, newline="").readlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    skip = 0
    if first is not None and (match := _SEP_LINE.match(lines[first].rstrip("\r\n"))):
        delimiter, skip = match.group(1), first + 1
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))  # a huge cell is a value, not an error
    reader = csv.reader(iter(lines[skip:]), delimiter=delimiter, strict=False)
    header: list[str] | None = None
    rows: list[list[str]] = []
    problems: list[str] = []
    records = 0
    end = skip
    try:
        for record in reader:
            start, end = end + 1, skip + reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if header is None:
                header = record
                continue
            span = end - start + 1
            if span > 1:
                broken = [
                    name
                    for name, cell in zip(header, record, strict=False)
                    if ("\n" in cell or "\r" in cell) and name not in multiline
                ]
                if broken or len(record) > len(header):
                    # Each swallowed line that holds a whole record's delimiters is a record of the file.
                    whole = len(header) - 1
                    records += max(1, sum(1 for line in lines[start - 1 : end] if line.count(delimiter) >= whole))
                    where = f"column {broken[0]}" if broken else "the record"
                    problems.append(
                        f"a quoted cell of {where} runs from line {start} to line {end} ({span} lines): a quote "
                        "left open merges records (cells may hold line breaks only in a column declared multiline)"
                    )
                    continue
            records += 1
            if len(record) != len(header):
                problems.append(f"line {start} has {len(record)} fields, the header has {len(header)}")
                continue
            rows.append(record)
    except csv.Error as exc:  # pragma: no cover - strict=False and NUL-free text leave little to raise
        problems.append(f"line {end + 1}: {exc}")
    return _Scan(header, rows, records, problems, sep_line=skip > 0)


def _read_csv(data: bytes, *, multiline: tuple[str, ...]) -> LandingTable:
    kind = _container_kind(data)
    if kind is not None:
        raise UnreadableFileError(f"{kind} where plain CSV text was expected", records=_records_in(data))
    text, notes = _decode(data)
    if "\x00" in text:
        stripped = text.replace("\x00", "")
        # NUL bytes in text: the records around them count; with other control characters it is binary.
        records = 0 if _CONTROL.search(stripped) else _scan_csv(stripped, multiline).records
        raise UnreadableFileError(
            f"binary content (NUL bytes) in a text file: {text.count(chr(0))} NUL characters, "
            f"the first at character {text.index(chr(0))}",
            records=records,
        )
    scan = _scan_csv(text, multiline)
    if scan.header is None:
        raise UnreadableFileError("no header: the file is empty", records=0)
    if scan.problems:
        more = f" (and {len(scan.problems) - 1} more problems)" if len(scan.problems) > 1 else ""
        raise UnreadableFileError(f"broken records: {scan.problems[0]}{more}", records=scan.records)
    header = [name if name else f"Unnamed: {i}" for i, name in enumerate(scan.header)]
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise UnreadableFileError(f"the header names column {twice[0]!r} more than once", records=scan.records)
    if len(scan.rows) != scan.records:  # pragma: no cover - every counted record is a row or a problem
        raise UnreadableFileError(f"read {len(scan.rows)} rows of {scan.records} records", records=scan.records)
    if scan.sep_line:
        notes.append("the first line names the delimiter (Excel's sep=): it is not a record")
    columns = {
        name: pd.Series([row[i] or None for row in scan.rows], dtype=object) for i, name in enumerate(header)
    }
    return LandingTable(pd.DataFrame(columns, columns=header), notes)


def _records_in(data: bytes) -> int:
    """Best-effort count of the records in a file that cannot be read as a table: the rows of a
    Parquet file; the records of compressed text (what can still be decompressed: a lower bound
    for a truncated stream); the records of text that does not decode (read leniently); 0 for
    binary content."""
    if data.startswith(PARQUET_MAGIC):
        try:
            return len(frame_from_parquet(data))
        except Exception:  # noqa: BLE001 - pyarrow raises several types for a broken file
            return 0
    try:
        if data.startswith(GZIP_MAGIC):
            data = zlib.decompressobj(wbits=31).decompress(data)  # takes a truncated stream
        elif data.startswith(b"BZh"):
            data = bz2.BZ2Decompressor().decompress(data)
        elif data.startswith(b"\xfd7zXZ\x00"):
            data = lzma.LZMADecompressor().decompress(data)
        elif data.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
                data = archive.read(names[0]) if len(names) == 1 else b""
    except (zlib.error, OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile, KeyError):
        return 0
    if _container_kind(data) is not None:
        return 0
    try:
        text, _ = _decode(data)
    except UnreadableFileError as exc:
        if exc.records is not None:
            return exc.records
        text = data.decode("utf-8", errors="replace")  # e.g. bad bytes after a byte order mark
    text = text.lstrip("\ufeff").replace("\x00", "")
    return 0 if _CONTROL.search(text) else _scan_csv(text, ()).records


def _parquet_as_text(data: bytes) -> pd.DataFrame:
    try:
        frame = frame_from_parquet(data)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
        records = 0
        if not data.startswith(PARQUET_MAGIC):  # e.g. CSV text delivered as data.parquet
            try:
                records = _read_csv(data, multiline=()).table.shape[0]
            except UnreadableFileError as csv_exc:
                records = csv_exc.records or 0
        raise UnreadableFileError(f"not a Parquet file: {exc}", records=records) from None
    return frame_as_text(frame)


def frame_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A landed Parquet file's frame as text, as CSV is read: every column as str, nulls kept."""
    text = {}
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            rendered = values.map(lambda t: t.isoformat() if not pd.isna(t) else None)
        else:
            rendered = values.astype(object).map(lambda v: None if pd.isna(v) else str(v))
        text[name] = rendered.astype(object)
    return pd.DataFrame(text)
