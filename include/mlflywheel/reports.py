"""Small helpers for self-contained HTML reports (validation, ingest, drift).

Reports are opened straight from the lake (a file browser, the S3 console, an Airflow
link), so every page carries its own CSS and nothing is loaded from the network.
Standard library only.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2rem; color: #1f2328; max-width: 1200px; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .25rem; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: .15rem .6rem; border-radius: 1rem; font-weight: 600;
         font-size: .85rem; color: #fff; }
.ok { background: #1a7f37; } .warn { background: #bf8700; } .bad { background: #cf222e; }
.muted { color: #656d76; font-size: .85rem; }
.scroll { overflow-x: auto; }
tr.drift td { background: #ffebe9; }
tr.drift td.flag { color: #cf222e; font-weight: 600; }
.verdict { display: inline-block; padding: .3rem .8rem; border-radius: 1rem; font-weight: 600; }
.verdict.drift { background: #ffebe9; color: #cf222e; }
.verdict.no_drift { background: #dafbe1; color: #1a7f37; }
.verdict.skipped { background: #eaeef2; color: #57606a; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; font-size: .85rem; }
"""

# Status words the pipeline uses, mapped to a badge colour.
_BADGE_CLASS = {
    "validated": "ok",
    "passed": "ok",
    "ok": "ok",
    "true": "ok",
    "partially_quarantined": "warn",
    "warning": "warn",
    "quarantined": "bad",
    "failed": "bad",
    "drift": "bad",
    "false": "bad",
}


class _Html(str):
    """A string already rendered as HTML (not escaped again by :func:`key_values`)."""


def raw(markup: str) -> _Html:
    return _Html(markup)


def esc(value: Any) -> str:
    """HTML-escape any value (``None`` shows as an empty cell)."""
    return "" if value is None else html.escape(str(value))


def badge(status: Any) -> _Html:
    css = _BADGE_CLASS.get(str(status).lower(), "warn")
    return raw(f'<span class="badge {css}">{esc(status)}</span>')


def number(value: Any, digits: int = 4) -> str:
    """A number for a report cell: tiny values (p-values are evidence) in scientific notation."""
    if value is None:
        return "\u2013"  # an en dash: no value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    raw_html_columns: Sequence[int] = (),
    numeric_columns: Sequence[int] = (),
    cell_classes: dict[int, str] | None = None,
    row_classes: Sequence[str] | None = None,
) -> str:
    """An HTML table; cells escaped unless listed in ``raw_html_columns``.

    Numbers (and the ``numeric_columns``, e.g. pre-formatted numbers) are right-aligned;
    ``cell_classes`` gives a column a CSS class, ``row_classes`` one class per row.
    """
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for index, row in enumerate(rows):
        cells = []
        for i, value in enumerate(row):
            is_raw = i in raw_html_columns
            text = value if is_raw else esc(value)
            css = (cell_classes or {}).get(i)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if css is None and not is_raw and (i in numeric_columns or is_number):
                css = "num"
            cells.append(f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>")
        tr = f'<tr class="{esc(row_classes[index])}">' if row_classes is not None else "<tr>"
        body.append(tr + "".join(cells) + "</tr>")
    rows_html = "".join(body)
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>"
    return f'<div class="scroll">{table_html}</div>'


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of labels and values (values may be pre-rendered HTML via :func:`badge`)."""
    rows = "".join(
        f"<tr><th>{esc(k)}</th><td>{v if isinstance(v, _Html) else esc(v)}</td></tr>" for k, v in pairs
    )
    return f"<table><tbody>{rows}</tbody></table>"


def bullet_list(items: Iterable[Any]) -> str:
    lis = "".join(f"<li>{esc(i)}</li>" for i in items)
    return f"<ul>{lis}</ul>" if lis else '<p class="muted">none</p>'


def page(title: str, sections: Iterable[tuple[str, str]], *, subtitle: str = "") -> str:
    """A complete HTML document: ``sections`` are (heading, inner HTML) pairs."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="muted">{esc(subtitle)}</p>')
    for heading, inner in sections:
        if heading:
            parts.append(f"<h2>{esc(heading)}</h2>")
        parts.append(inner)
    parts.append("</body></html>")
    return "\n".join(parts)
