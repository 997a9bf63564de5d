"""Charts drawn on the server as SVG: no chart JavaScript, and nothing the CSP refuses.

Colours and fonts are SVG presentation attributes (fill="..."), never style attributes
(the CSP allows only the site's own stylesheet). Every text that reaches the SVG is
escaped, as labels may carry what merchants typed. Money stays integer minor units and
is formatted by `faka.core.money.format_money`; floats are used for geometry only.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from markupsafe import Markup, escape

from faka.core.money import format_money

BAR_FILL = "#d9480f"
AXIS_STROKE = "#adb5bd"
TEXT_FILL = "#495057"
FONT_SIZE = 13
LABEL_EVERY_DAYS = 5


def _n(x: float) -> str:
    """A coordinate for the SVG: short, and never in exponent notation."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _value_text(value: int, money: bool, currency: str) -> str:
    return format_money(value, currency) if money else f"{int(value):,}"


def bar_chart_svg(
    points: list[tuple[str, int]],
    width: int = 640,
    height: int = 200,
    money: bool = True,
    currency: str = "CNY",
    label: str | None = None,
) -> Markup:
    """A responsive bar chart: one bar per (label, value), the largest value at the top of
    the y axis, every few labels on the x axis (always the last one) and each bar's label
    and value as its hover title. Values are integers (minor units when `money`)."""
    label = str(label or _("Bar chart"))
    values = [max(int(v), 0) for _label, v in points]
    top_value = max(values, default=0)
    top, bottom, left, right = 20.0, height - 20.0, 4.0, width - 4.0
    plot_height = bottom - top
    slot = (right - left) / len(points) if points else 0.0
    bar_width = slot * 0.7
    label_every = max(1, round(len(points) / 6)) if len(points) > 7 else 1

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'class="bar-chart" role="img" aria-label="{escape(label)}" '
        f'font-family="sans-serif" font-size="{FONT_SIZE}" fill="{TEXT_FILL}">',
        f"<title>{escape(label)}</title>",
        f'<text x="{_n(left)}" y="{_n(top - 6)}">{escape(_value_text(top_value, money, currency))}</text>',
        f'<line x1="{_n(left)}" y1="{_n(top)}" x2="{_n(right)}" y2="{_n(top)}" '
        f'stroke="{AXIS_STROKE}" stroke-dasharray="3 3"/>',
    ]
    for i, ((text, _value), value) in enumerate(zip(points, values)):
        bar_height = plot_height * value / top_value if top_value else 0.0
        x = left + i * slot + (slot - bar_width) / 2
        hover = f"{text}: {_value_text(value, money, currency)}"
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(bottom - bar_height)}" width="{_n(bar_width)}" '
            f'height="{_n(bar_height)}" fill="{BAR_FILL}"><title>{escape(hover)}</title></rect>'
        )
        if (len(points) - 1 - i) % label_every == 0:
            parts.append(
                f'<text x="{_n(left + (i + 0.5) * slot)}" y="{_n(height - 4)}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
    parts.append(f'<line x1="{_n(left)}" y1="{_n(bottom)}" x2="{_n(right)}" y2="{_n(bottom)}" stroke="{AXIS_STROKE}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class BarChart:
    """A chart and the numbers behind it, for `templates/merchant/_sales_chart.html`
    (which draws the SVG and the same numbers as a table)."""

    svg: Markup
    caption: str
    points: list[tuple[str, int]]
    label_heading: str
    value_heading: str
    money: bool = True
    currency: str = "CNY"

    @property
    def rows(self) -> list[tuple[str, str]]:
        return [(text, _value_text(value, self.money, self.currency)) for text, value in self.points]

    def __html__(self) -> str:
        return self.svg


def bar_chart(
    points: list[tuple[str, int]],
    caption: str,
    label_heading: str,
    value_heading: str,
    money: bool = True,
    currency: str = "CNY",
    **size,
) -> BarChart:
    points = list(points)
    svg = bar_chart_svg(points, money=money, currency=currency, label=caption, **size)
    return BarChart(svg, caption, points, label_heading, value_heading, money, currency)


def daily_sales_chart(daily_sales: Iterable[tuple[date, int, int]], currency: str = "CNY") -> BarChart:
    """Sales per day, from `analytics.Dashboard.daily_sales` ((day, revenue, orders), oldest first)."""
    points = [(day.strftime("%m-%d"), revenue) for day, revenue, _orders in daily_sales]
    return bar_chart(
        points,
        caption=_("Sales per day, last %(days)s days", days=len(points)),
        label_heading=_("Day"),
        value_heading=_("Sales"),
        currency=currency,
    )
