"""The HTML report helpers: escaping, badges, tables, and self-contained pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from mlflywheel import reports
from mlflywheel.reports import badge, bullet_list, esc, key_values, page, raw, table

NASTY = "<script>alert('x')</script> & \"q\""
NASTY_ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;q&quot;"


class _Cells(HTMLParser):
    """Collects (tag, class attribute, text) for each <td>/<th>/<li>."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str | None, str]] = []
        self._open: list[tuple[str, str | None, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("td", "th", "li"):
            self._open.append((tag, dict(attrs).get("class"), []))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th", "li") and self._open:
            t, cls, text = self._open.pop()
            self.cells.append((t, cls, "".join(text)))

    def handle_data(self, data: str) -> None:
        for _, _, text in self._open:
            text.append(data)


def cells(markup: str) -> list[tuple[str, str | None, str]]:
    parser = _Cells()
    parser.feed(markup)
    parser.close()
    return parser.cells


# --- esc and badge -----------------------------------------------------------------------------


def test_esc_escapes_markup_and_quotes() -> None:
    assert esc(NASTY) == NASTY_ESCAPED
    assert esc("plain") == "plain"


def test_esc_renders_none_empty_and_other_values_as_text() -> None:
    assert esc(None) == ""
    assert esc(0) == "0"
    assert esc(False) == "False"
    assert esc(1.5) == "1.5"
    assert esc(["<a>"]) == "[&#x27;&lt;a&gt;&#x27;]"


@pytest.mark.parametrize(
    ("status", "css"),
    [
        ("validated", "ok"), ("passed", "ok"), ("ok", "ok"), ("true", "ok"), (True, "ok"),
        ("partially_quarantined", "warn"), ("warning", "warn"),
        ("quarantined", "bad"), ("failed", "bad"), ("drift", "bad"), ("false", "bad"), (False, "bad"),
        ("FAILED", "bad"), ("Validated", "ok"),
    ],
)  # fmt: skip
def test_badge_class_for_known_statuses(status: object, css: str) -> None:
    markup = badge(status)
    assert markup == f'<span class="badge {css}">{esc(status)}</span>'


@pytest.mark.parametrize("status", ["unknown", "running", "", None, 3])
def test_badge_unknown_status_is_a_warning(status: object) -> None:
    assert badge(status).startswith('<span class="badge warn">')


def test_badge_escapes_its_text_and_is_marked_as_html() -> None:
    markup = badge(NASTY)
    assert NASTY_ESCAPED in markup and "<script>" not in markup
    assert isinstance(markup, str)
    assert isinstance(markup, type(raw("")))


# --- table -------------------------------------------------------------------------------------


def test_table_headers_rows_and_wrapper() -> None:
    markup = table(["name", "<count>"], [("a", 1), ("b", 2)])
    assert markup.startswith('<div class="scroll"><table><thead><tr>')
    assert markup.endswith("</tbody></table></div>")
    assert cells(markup) == [
        ("th", None, "name"),
        ("th", None, "<count>"),
        ("td", None, "a"),
        ("td", "num", "1"),
        ("td", None, "b"),
        ("td", "num", "2"),
    ]
    assert "<th>&lt;count&gt;</th>" in markup
    assert markup.count("<tr>") == 3


def test_table_right_aligns_numbers_but_not_bools_or_numeric_text() -> None:
    markup = table(["v"], [(3,), (2.5,), (-1,), (True,), (False,), ("42",), (None,)])
    assert [c[1] for c in cells(markup) if c[0] == "td"] == ["num", "num", "num", None, None, None, None]
    assert "<td>True</td>" in markup and "<td>False</td>" in markup
    assert "<td></td>" in markup  # None renders as an empty cell


def test_table_escapes_cells_except_raw_html_columns() -> None:
    link = '<a href="report.html">report</a>'
    markup = table(["text", "html"], [(link, link), (NASTY, badge("failed"))], raw_html_columns=[1])
    rows = re.findall(r"<tr>(.*?)</tr>", markup)[1:]
    assert rows[0] == f"<td>{esc(link)}</td><td>{link}</td>"
    assert rows[1] == f'<td>{NASTY_ESCAPED}</td><td><span class="badge bad">failed</span></td>'


def test_table_escapes_badges_outside_raw_columns() -> None:
    markup = table(["status"], [(badge("failed"),)])
    assert "<span" not in markup
    assert "&lt;span class=&quot;badge bad&quot;&gt;failed&lt;/span&gt;" in markup


def test_table_raw_column_is_not_number_formatted() -> None:
    markup = table(["n"], [(5,)], raw_html_columns=(0,))
    assert "<td>5</td>" in markup and 'class="num"' not in markup


def test_table_accepts_a_generator_and_no_rows() -> None:
    markup = table(["a"], ((i,) for i in range(3)))
    assert [c[2] for c in cells(markup) if c[0] == "td"] == ["0", "1", "2"]
    empty = table(["a"], [])
    assert "<tbody></tbody>" in empty


# --- key_values and bullet_list ----------------------------------------------------------------


def test_key_values_keeps_badge_html_and_escapes_plain_text() -> None:
    markup = key_values([("status", badge("validated")), ("note", "<b>bold</b>"), ("<k>", None), ("n", 7)])
    assert markup.startswith("<table><tbody>") and markup.endswith("</tbody></table>")
    rows = re.findall(r"<tr>(.*?)</tr>", markup)
    assert rows == [
        '<th>status</th><td><span class="badge ok">validated</span></td>',
        "<th>note</th><td>&lt;b&gt;bold&lt;/b&gt;</td>",
        "<th>&lt;k&gt;</th><td></td>",
        "<th>n</th><td>7</td>",
    ]


def test_key_values_passes_raw_markup_through_but_not_lookalike_strings() -> None:
    markup = key_values([("a", raw("<i>x</i>")), ("b", "<i>x</i>")])
    assert "<td><i>x</i></td>" in markup
    assert "<td>&lt;i&gt;x&lt;/i&gt;</td>" in markup


def test_bullet_list_escapes_items() -> None:
    markup = bullet_list(["one", NASTY, None, 3])
    assert markup == f"<ul><li>one</li><li>{NASTY_ESCAPED}</li><li></li><li>3</li></ul>"


def test_bullet_list_empty_says_none() -> None:
    assert bullet_list([]) == '<p class="muted">none</p>'
    assert bullet_list(x for x in ()) == '<p class="muted">none</p>'
    assert "<ul>" not in bullet_list([])


# --- page --------------------------------------------------------------------------------------


def sample_page() -> str:
    return page(
        "Validation <transactions> & more",
        [
            ("Summary", key_values([("status", badge("validated"))])),
            ("", "<p>no heading</p>"),
            ("Reasons", bullet_list(["a < b"])),
            ("Rows", table(["n"], [(1,)])),
        ],
        subtitle="day <2026-11-03>",
    )


def test_page_is_a_complete_document() -> None:
    doc = sample_page()
    assert doc.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    assert doc.rstrip().endswith("</body></html>")
    assert '<meta charset="utf-8">' in doc
    assert doc.count("<html") == 1 and doc.count("<body>") == 1 and doc.count("</body>") == 1
    head = doc.split("<body>", 1)[0]
    assert "<style>" in head and "</style>" in head
    assert ".badge" in head and "td.num" in head  # the CSS the helpers' classes need is inlined


def test_page_is_self_contained() -> None:
    doc = sample_page()
    lowered = doc.lower()
    assert "<script" not in lowered
    assert "http://" not in lowered and "https://" not in lowered
    assert "<link" not in lowered and "@import" not in lowered and "url(" not in lowered
    assert "src=" not in lowered


def test_page_escapes_title_and_subtitle() -> None:
    doc = sample_page()
    assert "<title>Validation &lt;transactions&gt; &amp; more</title>" in doc
    assert "<h1>Validation &lt;transactions&gt; &amp; more</h1>" in doc
    assert '<p class="muted">day &lt;2026-11-03&gt;</p>' in doc
    assert "<transactions>" not in doc


def test_page_sections_in_order_and_headings_escaped() -> None:
    doc = sample_page()
    markers = ["<h1>", "<h2>Summary</h2>", "badge ok", "<p>no heading</p>", "<h2>Reasons</h2>",
               "<li>a &lt; b</li>", "<h2>Rows</h2>", 'class="num"', "</body>"]  # fmt: skip
    positions = [doc.index(m) for m in markers]
    assert positions == sorted(positions)
    assert doc.count("<h2>") == 3  # the section with an empty heading has none
    assert "<h2>&lt;x&gt;</h2>" in page("t", [("<x>", "")])


def test_page_without_subtitle_or_sections() -> None:
    doc = page("Empty", [])
    assert 'class="muted"' not in doc.split("</style>", 1)[1]
    assert "<h2>" not in doc
    assert doc.split("</style></head><body>", 1)[1] == "\n<h1>Empty</h1>\n</body></html>"


def test_badge_classes_have_css() -> None:
    for css in set(reports._BADGE_CLASS.values()) | {"warn"}:
        assert f".{css} " in reports._CSS
