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


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    raw_html_columns: Sequence[int] = (),
) -> str:
    """An HTML table; numbers are right-aligned, cells escaped unless listed in ``raw_html_columns``."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if i in raw_html_columns:
                cells.append(f"<td>{value}</td>")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f'<td class="num">{esc(value)}</td>')
            else:
                cells.append(f"<td>{esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
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
