"""Line plots drawn on the server as inline SVG: no script, no image request, no library.

One series of ``(x, y)`` points (a run's rounds and its nDCG@10) becomes an ``<svg>`` with
axes, grid lines, tick labels, the line and one ``<circle>`` per point (with a ``<title>``
a browser shows on hover, and ``data-x``/``data-y`` attributes for tests and tools).
Colours come from the console's stylesheet (classes), so the CSP needs no inline style.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.admin.console.markup import Html, join, tag

__all__ = ["PlotFrame", "line_plot", "ticks"]


@dataclass(frozen=True)
class PlotFrame:
    """The drawing's size in pixels and the margins around the plotting area."""

    width: int = 640
    height: int = 280
    left: int = 64
    right: int = 20
    top: int = 20
    bottom: int = 48

    @property
    def inner_width(self) -> int:
        """Width of the plotting area."""
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> int:
        """Height of the plotting area."""
        return self.height - self.top - self.bottom


def ticks(low: float, high: float, *, count: int = 5) -> list[float]:
    """About ``count`` round tick values from at most ``low`` to at least ``high``.

    Ticks are 1, 2 or 5 times a power of ten apart.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    values = [round(first, 12)]
    while values[-1] < high - step * 1e-9:
        values.append(round(first + len(values) * step, 12))
    return values


def _range(values: Sequence[float], *, pad_single: float) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:
        return low - pad_single, high + pad_single
    return low, high


def _label(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.3g}"


def line_plot(
    points: Sequence[tuple[float, float]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    frame: PlotFrame | None = None,
    element_id: str | None = None,
) -> Html:
    """``points`` as an inline SVG line plot; points with a non-finite value are left out."""
    box = frame or PlotFrame()
    shown = sorted((x, y) for x, y in points if math.isfinite(x) and math.isfinite(y))
    parts: list[Html] = [tag("title", title)]
    if not shown:
        parts.append(
            tag(
                "text",
                "no data",
                x=box.width // 2,
                y=box.height // 2,
                text_anchor="middle",
                class_="plot-empty",
            )
        )
        return _svg(box, parts, element_id, title)
    x_ticks = ticks(*_range([x for x, _ in shown], pad_single=1.0), count=min(len(shown), 10))
    y_ticks = ticks(*_range([y for _, y in shown], pad_single=0.05))
    x_low, x_high = min(x_ticks[0], shown[0][0]), max(x_ticks[-1], shown[-1][0])
    y_low = min(y_ticks[0], min(y for _, y in shown))
    y_high = max(y_ticks[-1], max(y for _, y in shown))

    def px(x: float) -> float:
        span = (x_high - x_low) or 1.0
        return round(box.left + (x - x_low) / span * box.inner_width, 2)

    def py(y: float) -> float:
        span = (y_high - y_low) or 1.0
        return round(box.top + (1 - (y - y_low) / span) * box.inner_height, 2)

    bottom, right = box.top + box.inner_height, box.left + box.inner_width
    grid = [
        tag("line", x1=box.left, x2=right, y1=py(value), y2=py(value), class_="plot-grid")
        for value in y_ticks
    ]
    labels = [
        tag("text", _label(value), x=box.left - 8, y=py(value) + 4, text_anchor="end")
        for value in y_ticks
    ] + [
        tag("text", _label(value), x=px(value), y=bottom + 18, text_anchor="middle")
        for value in x_ticks
    ]
    parts += [
        tag("g", join(grid), class_="plot-grid-lines"),
        tag("line", x1=box.left, x2=right, y1=bottom, y2=bottom, class_="plot-axis"),
        tag("line", x1=box.left, x2=box.left, y1=box.top, y2=bottom, class_="plot-axis"),
        tag("g", join(labels), class_="plot-ticks"),
        tag(
            "text",
            x_label,
            x=box.left + box.inner_width // 2,
            y=box.height - 8,
            text_anchor="middle",
            class_="plot-label",
        ),
        tag(
            "text",
            y_label,
            x=14,
            y=box.top + box.inner_height // 2,
            text_anchor="middle",
            transform=f"rotate(-90 14 {box.top + box.inner_height // 2})",
            class_="plot-label",
        ),
        tag(
            "polyline",
            points=" ".join(f"{px(x)},{py(y)}" for x, y in shown),
            fill="none",
            class_="plot-line",
        ),
        tag(
            "g",
            join(
                tag(
                    "circle",
                    tag("title", f"{x_label} {_label(x)}: {y_label} {y:.4f}"),
                    cx=px(x),
                    cy=py(y),
                    r=4,
                    data_x=_label(x),
                    data_y=f"{y:.6g}",
                    class_="plot-point",
                )
                for x, y in shown
            ),
            class_="plot-points",
        ),
    ]
    return _svg(box, parts, element_id, title)


def _svg(box: PlotFrame, parts: list[Html], element_id: str | None, title: str) -> Html:
    return tag(
        "svg",
        join(parts),
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {box.width} {box.height}",
        width=box.width,
        height=box.height,
        role="img",
        aria_label=title,
        id=element_id,
        class_="plot",
    )
