"""The bad-input corpus: each kind of landed file a hostile or careless upstream sends, built in code.

A :class:`Case` holds the landed bytes, the spec they are landed for, the records the file truly
holds (what ``rows_in`` must say), the outcome, and the fragment of text that must appear among
the reasons (ledger reasons, partition failures, quarantined rows' reasons, or ingest's notes for
a file read in a non-standard way). ``reason=None`` marks the few controls that must pass cleanly.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import datetime as dt
import gzip
import io
import lzma
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.landing import frame_to_csv_bytes
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.datasets.upstreams.transactions import generate_day
from mlflywheel.lake import frame_to_parquet

DAY = dt.date(2026, 11, 5)
N = 30  # records of a case's base file
SPEC = get_spec("transactions")
VALIDATED, PARTIAL, QUARANTINED = "validated", "partially_quarantined", "quarantined"


@dataclass
class Case:
    name: str
    data: bytes
    records: int
    status: str
    reason: str | None
    spec: DatasetSpec = SPEC
    check: Callable[[pd.DataFrame], None] | None = field(default=None, repr=False)  # on the raw frame


def base_frame(rows: int = N, seed: int = 21) -> pd.DataFrame:
    return generate_day(DAY, rows, seed=seed)


def base_lines(rows: int = N) -> list[str]:
    return frame_to_csv_bytes(base_frame(rows)).decode().splitlines()


def text(lines: list[str], newline: str = "\n", trailing: bool = True) -> str:
    return newline.join(lines) + (newline if trailing else "")


def col(name: str) -> int:
    return base_lines(1)[0].split(",").index(name)


def with_cells(changes: dict[tuple[int, str], str], rows: int = N) -> list[str]:
    """The base file's lines with cells replaced: ``{(record, column): text}`` (record 0-based)."""
    lines = base_lines(rows)
    for (record, column), value in changes.items():
        cells = lines[record + 1].split(",")
        cells[col(column)] = value
        lines[record + 1] = ",".join(cells)
    return lines


def utf8(lines: list[str]) -> bytes:
    return text(lines).encode()


def _assert_times(expected: list[str]) -> Callable[[pd.DataFrame], None]:
    def check(raw: pd.DataFrame) -> None:
        assert raw["event_time"].head(len(expected)).tolist() == [pd.Timestamp(t, tz="UTC") for t in expected]

    return check


def _assert_ids(expected: list[str]) -> Callable[[pd.DataFrame], None]:
    def check(raw: pd.DataFrame) -> None:
        assert raw["transaction_id"].head(len(expected)).tolist() == expected

    return check


def _assert_cell(column: str, record: int, value: object) -> Callable[[pd.DataFrame], None]:
    def check(raw: pd.DataFrame) -> None:
        assert raw[column][record] == value

    return check


def _zip(data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("data.csv", data)
    return out.getvalue()


def _quoted_all() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for line in base_lines():
        writer.writerow(line.split(","))
    return out.getvalue().encode()


def cases() -> list[Case]:
    lines = base_lines()
    clean = utf8(lines)
    header, body = lines[0], lines[1:]
    day_text = DAY.isoformat()
    ruled = dataclasses.replace(SPEC, max_text_length=200, reject_formulas=True)
    multiline = dataclasses.replace(
        SPEC,
        columns=tuple(dataclasses.replace(c, multiline=True) if c.name == "customer_id" else c for c in SPEC.columns),
    )
    parquet_spec = dataclasses.replace(SPEC, landing_format="parquet")
    big_ints = base_frame().astype({"account_age_days": "float64"})
    big_ints.loc[2, "account_age_days"] = 1e20
    quote_open = with_cells({(5, "customer_id"): '"c-open', (15, "customer_id"): 'c-close"'})
    unclosed = with_cells({(25, "customer_id"): '"c-never-closed'})
    out: list[Case] = [
        # --- encodings ------------------------------------------------------------------------
        Case("utf8_bom", b"\xef\xbb\xbf" + clean, N, VALIDATED, None),
        Case("utf16_le_bom", text(lines).encode("utf-16"), N, VALIDATED, "decoded as UTF-16-LE (byte order mark)"),
        Case("utf16_be_bom", b"\xfe\xff" + text(lines).encode("utf-16-be"), N, VALIDATED, "UTF-16-BE (byte order mark)"),
        Case("utf16_le_no_bom", text(lines).encode("utf-16-le"), N, VALIDATED, "recognised by its NUL bytes"),
        Case("utf32_bom", text(lines).encode("utf-32"), N, VALIDATED, "decoded as UTF-32-LE"),
        Case("latin1", utf8(with_cells({(3, "customer_id"): "Zoë"})).decode().encode("latin-1"), N, VALIDATED,
             "decoded as Windows-1252", check=_assert_cell("customer_id", 3, "Zoë")),
        Case("cp1252_smart_quotes", text(with_cells({(4, "customer_id"): "“c-4”"})).encode("cp1252"), N, VALIDATED,
             "not UTF-8", check=_assert_cell("customer_id", 4, "“c-4”")),
        Case("bad_bytes_after_utf8_bom", b"\xef\xbb\xbf" + clean.replace(b",c-", b",c\xff-", 1), N, QUARANTINED,
             "despite its byte order mark"),
        Case("nul_bytes", text(lines).replace("\n", "\x00\n", 4).encode(), N, QUARANTINED, "NUL bytes"),
        Case("nul_padding", clean + b"\x00" * 512, N, QUARANTINED, "NUL bytes"),
        Case("control_chars_binary", bytes(range(256)) * 4, 0, QUARANTINED, "binary content"),
        Case("png_image", b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x01" * 40, 0, QUARANTINED, "binary content"),
        # --- delimiters and line ends ---------------------------------------------------------
        Case("semicolon_delimited", text([line.replace(",", ";") for line in lines]).encode(), N, QUARANTINED,
             "the columns differ from the schema"),
        Case("excel_sep_line", ("sep=;\n" + text([line.replace(",", ";") for line in lines])).encode(), N,
             VALIDATED, "Excel's sep="),
        Case("tab_delimited", text([line.replace(",", "\t") for line in lines]).encode(), N, QUARANTINED,
             "missing transaction_id"),
        Case("excel_sep_tab", ("sep=\t\r\n" + text([line.replace(",", "\t") for line in lines], "\r\n")).encode(), N,
             VALIDATED, "Excel's sep="),
        Case("crlf", text(lines, "\r\n").encode(), N, VALIDATED, None),
        Case("cr_only", text(lines, "\r").encode(), N, VALIDATED, None),
        Case("no_final_newline", text(lines, trailing=False).encode(), N, VALIDATED, None),
        Case("blank_lines", text([header, "", *body[:10], "", "   ", *body[10:], ""]).encode(), N, VALIDATED, None),
        # --- quoting ----------------------------------------------------------------------------
        Case("quote_across_ten_rows", utf8(quote_open), N, QUARANTINED, "runs from line 7 to line 17"),
        Case("quote_never_closed", utf8(unclosed), N, QUARANTINED, "runs from line 27 to line 31"),
        Case("line_break_in_cell", utf8(with_cells({(2, "customer_id"): '"c-2\nc-2b"'})), N, QUARANTINED,
             "line breaks only in a column declared multiline"),
        Case("line_break_in_multiline_column", utf8(with_cells({(2, "customer_id"): '"c-2\nc-2b"'})), N, VALIDATED,
             None, spec=multiline, check=_assert_cell("customer_id", 2, "c-2\nc-2b")),
        Case("all_cells_quoted", _quoted_all(), N, VALIDATED, None),
        Case("embedded_comma_quoted", utf8(with_cells({(1, "customer_id"): '"c-1, jr"'})), N, VALIDATED, None,
             check=_assert_cell("customer_id", 1, "c-1, jr")),
        Case("doubled_quotes", utf8(with_cells({(1, "customer_id"): '"c-""1"""'})), N, VALIDATED, None,
             check=_assert_cell("customer_id", 1, 'c-"1"')),
        Case("quoted_number_with_decimal_comma", utf8(with_cells({(6, "amount"): '"12,50"'})), N, PARTIAL,
             "amount='12,50' is not a valid float"),
        # --- headers -----------------------------------------------------------------------------
        Case("header_only", utf8([header]), 0, QUARANTINED, "the partition is empty"),
        Case("duplicate_header_column", utf8([header + ",amount", *[line + ",1.0" for line in body]]), N,
             QUARANTINED, "names column 'amount' more than once"),
        Case("header_trailing_space", utf8([header.replace("amount", "amount "), *body]), N, QUARANTINED,
             "unexpected amount "),
        Case("header_upper_case", utf8([header.replace("amount", "AMOUNT"), *body]), N, QUARANTINED,
             "missing amount"),
        Case("trailing_delimiter", utf8([line + "," for line in lines]), N, QUARANTINED, "unexpected Unnamed: 12"),
        Case("reserved_meta_column", utf8([header + ",_row", *[line + ",7" for line in body]]), N, QUARANTINED,
             "reserved for the pipeline's meta columns"),
        Case("columns_reordered", frame_to_csv_bytes(base_frame()[list(reversed(SPEC.column_names))]), N, VALIDATED,
             None),
        # --- types and overflow ------------------------------------------------------------------
        Case("int_2_pow_63", utf8(with_cells({(0, "account_age_days"): "9223372036854775808"})), N, PARTIAL,
             "'9223372036854775808' is beyond the 64-bit int range (overflow)"),
        Case("int_1e20", utf8(with_cells({(0, "txn_count_24h"): "1e20"})), N, PARTIAL, "'1e20' is beyond the 64-bit"),
        Case("int_huge_exponent", utf8(with_cells({(0, "txn_count_24h"): "1e999999999"})), N, PARTIAL, "(overflow)"),
        Case("int_negative_overflow", utf8(with_cells({(0, "account_age_days"): "-9223372036854775809"})), N, PARTIAL,
             "(overflow)"),
        Case("int_max_int64_exact", utf8(with_cells({(0, "account_age_days"): "9223372036854775807"})), N, PARTIAL,
             "account_age_days outside [0, 20000]", check=_assert_cell("account_age_days", 0, 2**63 - 1)),
        Case("float_overflow", utf8(with_cells({(0, "amount"): "1e400"})), N, PARTIAL,
             "'1e400' overflows the float range (overflow)"),
        Case("float_inf", utf8(with_cells({(0, "amount"): "inf"})), N, PARTIAL, "amount='inf' is not a valid float"),
        Case("int_fraction", utf8(with_cells({(0, "txn_count_24h"): "2.5"})), N, PARTIAL, "'2.5' is not a whole number"),
        Case("float_text", utf8(with_cells({(0, "amount"): "#REF!", (1, "amount"): "twelve"})), N, PARTIAL,
             "amount='#REF!' is not a valid float"),
        Case("datetime_garbage", utf8(with_cells({(0, "event_time"): "yesterday"})), N, PARTIAL,
             "event_time='yesterday' is not a valid datetime"),
        Case("datetime_year_2300", utf8(with_cells({(0, "event_time"): "2300-01-01T00:00:00Z"})), N, PARTIAL,
             "outside the range the pipeline stores"),
        Case("parquet_float_overflow_in_int", frame_to_parquet(big_ints), N, PARTIAL, "(overflow)", spec=parquet_spec),
        # --- time zones ---------------------------------------------------------------------------
        Case("naive_after_offset",
             utf8(with_cells({(0, "event_time"): f"{day_text}T10:00:00+05:30", (1, "event_time"): f"{day_text}T12:00:00",
                              (2, "event_time"): f"{day_text}T13:00:00-0200", (3, "event_time"): f"{day_text} 14:00:00"})),
             N, VALIDATED, None,
             check=_assert_times([f"{day_text} 04:30", f"{day_text} 12:00", f"{day_text} 15:00", f"{day_text} 14:00"])),
        Case("offset_moves_row_to_next_day", utf8(with_cells({(0, "event_time"): f"{day_text}T23:30:00-02:00"})), N,
             PARTIAL, "event_time outside the partition day"),
        Case("date_only_timestamp", utf8(with_cells({(0, "event_time"): day_text})), N, VALIDATED, None,
             check=_assert_times([f"{day_text} 00:00"])),
        # --- duplicates, ids, missing values --------------------------------------------------------
        Case("duplicate_ids", utf8(with_cells({(1, "transaction_id"): body[0].split(",")[0]})), N, PARTIAL,
             "duplicate transaction_id"),
        Case("duplicate_row", utf8([*lines, body[3]]), N + 1, PARTIAL, "duplicate transaction_id"),
        Case("na_words_as_ids",
             utf8(with_cells({(0, "transaction_id"): "NA", (1, "transaction_id"): "null", (2, "transaction_id"): "None"})),
             N, VALIDATED, None, check=_assert_ids(["NA", "null", "None"])),
        Case("na_word_in_required_number", utf8(with_cells({(0, "amount"): "NA", (1, "amount"): "NULL"})), N, PARTIAL,
             "amount is missing or not a valid float"),
        Case("empty_required_cells", utf8(with_cells({(0, "customer_id"): "", (1, "channel"): ""})), N, PARTIAL,
             "customer_id is missing"),
        # --- extra, missing and underscore columns ---------------------------------------------------
        Case("extra_column", utf8([header + ",promo", *[line + ",x" for line in body]]), N, QUARANTINED,
             "unexpected promo"),
        Case("missing_column", frame_to_csv_bytes(base_frame().drop(columns=["amount"])), N, QUARANTINED,
             "missing amount"),
        Case("underscore_column", utf8([header + ",_note", *[line + ",hi" for line in body]]), N, QUARANTINED,
             "unexpected _note"),
        # --- huge cells and formula text ---------------------------------------------------------------
        Case("huge_cell_without_rule", utf8(with_cells({(0, "customer_id"): "c" * 300_000})), N, VALIDATED, None),
        Case("huge_cell_with_rule", utf8(with_cells({(0, "customer_id"): "c" * 1_000_000})), N, PARTIAL,
             "customer_id longer than 200 characters", spec=ruled),
        Case("formula_text", utf8(with_cells({(0, "customer_id"): '"=HYPERLINK(""http://x.example"",""go"")"',
                                               (1, "customer_id"): "@SUM(A1)", (2, "customer_id"): "+cmd"})),
             N, PARTIAL, "customer_id looks like a spreadsheet formula", spec=ruled),
        Case("formula_text_without_rule", utf8(with_cells({(0, "customer_id"): "=1+1"})), N, VALIDATED, None),
        # --- binary, compressed, wrong format -------------------------------------------------------------
        Case("gzip_csv", gzip.compress(clean), N, QUARANTINED, "gzip-compressed data"),
        Case("zip_csv", _zip(clean), N, QUARANTINED, "a zip archive"),
        Case("bzip2_csv", bz2.compress(clean), N, QUARANTINED, "bzip2-compressed data"),
        Case("xz_csv", lzma.compress(clean), N, QUARANTINED, "xz-compressed data"),
        Case("parquet_named_csv", frame_to_parquet(base_frame()), N, QUARANTINED, "Parquet data (magic bytes PAR1)"),
        Case("xls_ole2", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, 0, QUARANTINED, "OLE2"),
        Case("csv_named_parquet", clean, N, QUARANTINED, "not a Parquet file", spec=parquet_spec),
        # --- empty, ragged, all bad -------------------------------------------------------------------------
        Case("empty_file", b"", 0, QUARANTINED, "the file is empty"),
        Case("whitespace_only", b"  \n\n \r\n", 0, QUARANTINED, "the file is empty"),
        Case("row_with_extra_field", utf8([*lines[:5], lines[5] + ",extra", *lines[6:]]), N, QUARANTINED,
             "line 6 has 13 fields, the header has 12"),
        Case("row_with_missing_fields", utf8([*lines[:5], ",".join(lines[5].split(",")[:4]), *lines[6:]]), N,
             QUARANTINED, "line 6 has 4 fields"),
        Case("all_rows_bad", utf8(with_cells({(i, "amount"): "abc" for i in range(N)})), N, QUARANTINED,
             "30 of 30 rows (100.0%) failed row-level expectations"),
    ]
    names = [c.name for c in out]
    assert len(set(names)) == len(names), "case names must be unique"
    return out
