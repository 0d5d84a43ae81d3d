"""Server-rendered SVG charts (web/pages/charts.py): pure functions, escaped text, accessible names and tables,
classes instead of styles, gaps where a line has no figure, readable axis labels."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from web.pages.charts import Bar, Point, bar_chart, compact, hbar_chart, line_chart, nice_ceiling, slug

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def test_a_bar_chart_has_a_name_a_description_and_a_table_of_its_figures() -> None:
    bars = [Bar("Current", Decimal("1200.50"), "$1,200.50", "b-current"), Bar("1-30", Decimal(0), "$0.00", "b-1-30")]
    figure = _parse(bar_chart("Aging in USD", bars, description="Open by days past due.", headings=("Days", "Open")))
    assert figure.tag == "figure"
    assert figure.get("id") == "chart-aging-in-usd"
    svg = figure.find(f"{SVG}svg")
    assert svg is not None
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "chart-aging-in-usd-title chart-aging-in-usd-desc"
    assert svg.find(f"{SVG}title").text == "Aging in USD"  # type: ignore[union-attr]
    rects = svg.findall(f"{SVG}rect")
    assert [rect.get("class") for rect in rects] == ["bar b-current", "bar b-1-30"]
    assert rects[0].find(f"{SVG}title").text == "Current: $1,200.50"  # type: ignore[union-attr]
    assert float(rects[1].get("height", "1")) == 0
    table = figure.find("table")
    assert table is not None
    assert table.get("class") == "visually-hidden"
    assert [cell.text for cell in table.iter() if cell.tag in ("th", "td")] == [
        "Days",
        "Open",
        "Current",
        "$1,200.50",
        "1-30",
        "$0.00",
    ]
    assert figure.find("figcaption").text == "Open by days past due."  # type: ignore[union-attr]


def test_text_is_escaped_and_nothing_is_styled_inline() -> None:
    evil = '<script>alert("x")</script> & "quotes"'
    markup = str(
        bar_chart(evil, [Bar(evil, Decimal(5), evil)], description=evil)
        + line_chart(evil, [Point(evil, Decimal(1), evil), Point("b", Decimal(2), "2")])
        + hbar_chart(evil, [Bar(evil, Decimal(3), evil)])
    )
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    assert "style=" not in markup
    assert not re.search(r"\son[a-z]+=", markup)
    for chart in re.findall(r"<figure.*?</figure>", markup):
        _parse(chart)  # well formed


def test_a_line_breaks_where_there_is_no_figure() -> None:
    points = [
        Point("1 Sep", None, "no sales"),
        Point("8 Sep", Decimal("40"), "40 days"),
        Point("15 Sep", Decimal("42.5"), "42.5 days"),
        Point("22 Sep", None, "no sales"),
        Point("29 Sep", Decimal("30"), "30 days"),
    ]
    svg = _parse(line_chart("DSO", points)).find(f"{SVG}svg")
    assert svg is not None
    assert len(svg.findall(f"{SVG}polyline")) == 1  # 8 and 15 Sep joined; 29 Sep alone (a dot only)
    assert len(svg.findall(f"{SVG}circle")) == 3
    assert all(0 <= float(c.get("cx", "-1")) <= 360 for c in svg.findall(f"{SVG}circle"))


def test_long_axes_label_every_other_point_but_always_the_last() -> None:
    points = [Point(f"w{n}", Decimal(n), str(n)) for n in range(13)]
    svg = _parse(line_chart("Weekly", points)).find(f"{SVG}svg")
    assert svg is not None
    labels = [text.text for text in svg.findall(f"{SVG}text") if text.get("class") == "label"]
    assert labels[-1] == "w12"
    assert len(labels) <= 7


def test_horizontal_bars_shorten_long_labels_but_keep_them_whole_in_the_table() -> None:
    long = "payment plan installment +0 days"
    figure = _parse(hbar_chart("Steps", [Bar(long, Decimal(4), "4 payments"), Bar("due", Decimal(0), "0")]))
    svg = figure.find(f"{SVG}svg")
    assert svg is not None
    shown = [text.text for text in svg.findall(f"{SVG}text") if text.get("class") == "label"]
    assert shown[0] is not None
    assert shown[0].endswith("\u2026")
    assert len(shown[0]) <= 18
    assert long in [cell.text for cell in figure.iter("th")]
    assert svg.get("viewBox") == "0 0 360 60"  # a row per bar


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal(0), "0"),
        (Decimal("950"), "950"),
        (Decimal("1234"), "1.2k"),
        (Decimal("35000"), "35k"),
        (Decimal("2500000"), "2.5M"),
        (Decimal("0.5"), "0.5"),
        (Decimal("-1500"), "-1.5k"),
    ],
)
def test_axis_labels_are_compact(value: Decimal, text: str) -> None:
    assert compact(value) == text


@pytest.mark.parametrize(
    ("value", "top"),
    [
        (Decimal(0), Decimal(1)),
        (Decimal(7), Decimal(10)),
        (Decimal(157000), Decimal(200000)),
        (Decimal(23), Decimal(25)),
    ],
)
def test_the_value_axis_ends_at_a_round_number(value: Decimal, top: Decimal) -> None:
    assert nice_ceiling(value) == top


def test_ids_are_safe() -> None:
    assert slug('Aging in "USD" <x>') == "aging-in-usd-x"
    assert slug("***") == "chart"
