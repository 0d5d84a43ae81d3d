"""Charts drawn on the server as SVG: pure functions from figures to Markup, no script, no inline styles.

Each chart is a `<figure>`: an `<svg role="img">` named by its `<title>` and described by its `<desc>`, a
`<figcaption>` people read, and the same figures as a visually hidden table for screen readers (the SVG's own
text is decoration for them). Colours come from classes (`bar`, `b-<bucket>`, `line`, `dot`, `axis` in
web/static/nudge.css). The drawing is 360 units wide, about a phone's width, so its 11 px labels stay readable
at 390 px and grow a little on a desktop; long axes label every other point.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from markupsafe import Markup

WIDTH = 360
HEIGHT = 200
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 18, 30
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM
MAX_LABELS = 7  # x-axis labels shown at most (every other one, every third ... beyond)


@dataclass(frozen=True)
class Bar:
    """One bar: its label on the x axis, its value, the value in words, and an optional class (e.g. "b-1-30")."""

    label: str
    value: Decimal
    text: str
    tone: str = ""


@dataclass(frozen=True)
class Point:
    """One point of a line: its label on the x axis, its value (None: no figure that day) and the value in words."""

    label: str
    value: Decimal | None
    text: str


def slug(text: str) -> str:
    """An id-safe form of `text` ("Aging in USD" -> "aging-in-usd")."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "chart"


def compact(value: Decimal) -> str:
    """A short axis label: 950, 1.2k, 35k, 1.2M."""
    magnitude = abs(value)
    for size, suffix in ((Decimal(1_000_000_000), "B"), (Decimal(1_000_000), "M"), (Decimal(1000), "k")):
        if magnitude >= size:
            scaled = value / size
            shown = f"{scaled:.1f}" if abs(scaled) < 10 else f"{scaled:.0f}"
            return f"{shown.removesuffix('.0')}{suffix}"
    return f"{value:.0f}" if value == value.to_integral_value() or magnitude >= 10 else f"{value:.1f}"


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above `value` (1 for nothing): the top of the value axis."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        top = step.scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)  # pragma: no cover - 10 x 10^n always reaches `value`


def _y(value: Decimal, top: Decimal) -> float:
    return TOP + PLOT_H - float(value / top) * PLOT_H


def _frame(top: Decimal) -> list[Markup]:
    """The value axis: lines and labels at 0, half and the top."""
    parts = []
    for share in (Decimal(0), Decimal("0.5"), Decimal(1)):
        value = top * share
        y = f"{_y(value, top):.1f}"
        parts.append(Markup('<line class="axis" x1="{}" y1="{}" x2="{}" y2="{}"/>').format(LEFT, y, WIDTH - RIGHT, y))
        parts.append(
            Markup('<text class="tick" x="{}" y="{:.1f}" text-anchor="end">{}</text>').format(
                LEFT - 4, _y(value, top) + 4, compact(value)
            )
        )
    return parts


def _labels(labels: Sequence[str], centres: Sequence[float]) -> list[Markup]:
    every = max(1, -(-len(labels) // MAX_LABELS))
    last = len(labels) - 1
    return [
        Markup('<text class="label" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
            x, HEIGHT - BOTTOM + 16, label
        )
        for index, (label, x) in enumerate(zip(labels, centres, strict=True))
        if (last - index) % every == 0  # the latest point is always labelled
    ]


def _figure(
    title: str,
    description: str,
    svg_body: list[Markup],
    rows: Sequence[tuple[str, str]],
    headings: tuple[str, str],
    *,
    height: int = HEIGHT,
) -> Markup:
    ident = f"chart-{slug(title)}"
    table = Markup("").join(
        Markup('<tr><th scope="row">{}</th><td>{}</td></tr>').format(label, value) for label, value in rows
    )
    return Markup(
        '<figure class="chart-figure" id="{ident}">'
        '<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{ident}-title {ident}-desc" '
        'xmlns="http://www.w3.org/2000/svg">'
        '<title id="{ident}-title">{title}</title><desc id="{ident}-desc">{description}</desc>{body}</svg>'
        "<figcaption>{description}</figcaption>"
        '<table class="visually-hidden"><caption>{title}</caption>'
        '<thead><tr><th scope="col">{first}</th><th scope="col">{second}</th></tr></thead>'
        "<tbody>{table}</tbody></table></figure>"
    ).format(
        ident=ident,
        width=WIDTH,
        height=height,
        title=title,
        description=description,
        body=Markup("").join(svg_body),
        first=headings[0],
        second=headings[1],
        table=table,
    )


def bar_chart(
    title: str, bars: Sequence[Bar], *, description: str = "", headings: tuple[str, str] = ("", "Amount")
) -> Markup:
    """Vertical bars from 0, each labelled below; its value in words on hover and in the hidden table."""
    top = nice_ceiling(max((bar.value for bar in bars), default=Decimal(0)))
    slot = PLOT_W / max(len(bars), 1)
    width = min(slot * 0.64, 48)
    body = _frame(top)
    centres = []
    for index, bar in enumerate(bars):
        centre = LEFT + slot * (index + 0.5)
        centres.append(centre)
        value = max(bar.value, Decimal(0))
        y = _y(value, top)
        body.append(
            Markup(
                '<rect class="{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"><title>{}: {}</title></rect>'
            ).format(f"bar {bar.tone}".strip(), centre - width / 2, y, width, TOP + PLOT_H - y, bar.label, bar.text)
        )
        if len(bars) <= MAX_LABELS and value > 0:
            body.append(
                Markup('<text class="value" x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>').format(
                    centre, y - 4, compact(value)
                )
            )
    body.extend(_labels([bar.label for bar in bars], centres))
    return _figure(title, description, body, [(bar.label, bar.text) for bar in bars], headings)


def hbar_chart(
    title: str, bars: Sequence[Bar], *, description: str = "", headings: tuple[str, str] = ("", "Value")
) -> Markup:
    """Horizontal bars, one row each with its label on the left (shortened to fit; whole in the hidden table)
    and its value at the end: for long labels such as cadence step names."""
    row_h, label_w, value_w = 26, 120, 44
    height = max(len(bars), 1) * row_h + 8
    top = nice_ceiling(max((bar.value for bar in bars), default=Decimal(0)))
    span = WIDTH - label_w - value_w
    body = []
    for index, bar in enumerate(bars):
        y = 4 + index * row_h
        width = float(max(bar.value, Decimal(0)) / top) * span
        short = bar.label if len(bar.label) <= 18 else bar.label[:17] + "\u2026"
        tone = f"bar {bar.tone}".strip()
        body.append(
            Markup(
                '<text class="label" x="{}" y="{:.1f}" text-anchor="end">{}</text>'
                '<rect class="{}" x="{}" y="{}" width="{:.1f}" height="{}"><title>{}: {}</title></rect>'
                '<text class="value" x="{:.1f}" y="{:.1f}">{}</text>'
            ).format(
                label_w - 6,
                y + row_h / 2 + 2,
                short,
                tone,
                label_w,
                y + 4,
                width,
                row_h - 8,
                bar.label,
                bar.text,
                label_w + width + 4,
                y + row_h / 2 + 2,
                compact(bar.value),
            )
        )
    return _figure(title, description, body, [(bar.label, bar.text) for bar in bars], headings, height=height)


def line_chart(
    title: str, points: Sequence[Point], *, description: str = "", headings: tuple[str, str] = ("", "Value")
) -> Markup:
    """A line through the points that have a value (a gap where one has none), a dot at each."""
    top = nice_ceiling(max((point.value for point in points if point.value is not None), default=Decimal(0)))
    inset = 18  # room for the first and last labels, centred under their points
    step = (PLOT_W - 2 * inset) / max(len(points) - 1, 1)
    body = _frame(top)
    centres = [LEFT + inset + step * index if len(points) > 1 else LEFT + PLOT_W / 2 for index in range(len(points))]
    segment: list[str] = []
    segments: list[list[str]] = []
    dots = []
    for point, x in zip(points, centres, strict=True):
        if point.value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        y = _y(max(point.value, Decimal(0)), top)
        segment.append(f"{x:.1f},{y:.1f}")
        dots.append(
            Markup('<circle class="dot" cx="{:.1f}" cy="{:.1f}" r="3"><title>{}: {}</title></circle>').format(
                x, y, point.label, point.text
            )
        )
    if segment:
        segments.append(segment)
    body.extend(
        Markup('<polyline class="line" points="{}"/>').format(" ".join(part)) for part in segments if len(part) > 1
    )
    body.extend(dots)
    body.extend(_labels([point.label for point in points], centres))
    return _figure(title, description, body, [(point.label, point.text) for point in points], headings)
