"""SVG line charts for the simulations' figures under docs/: one line per series, a legend
on the right, gridlines with their values on the left. Plain text, no plotting library."""

from __future__ import annotations

import math
from pathlib import Path


def line_chart(
    path: Path,
    title: str,
    heading: str,
    series: dict[str, tuple[str, list[float]]],
    x_labels: dict[int, str],
    right: int = 200,
    stroke: str = "1.8",
    footer: str | None = None,
) -> None:
    """Write a chart: ``series`` maps a name to ``(colour, values)``, one value per point;
    ``x_labels`` labels some points by index."""
    width, height, left, bottom, top = 720, 300, 56, 40, 36
    points = max(len(values) for _, values in series.values())
    peak = max(1, max(max(values) for _, values in series.values()))
    step = 10 ** max(0, len(str(int(peak))) - 1)
    ceiling = math.ceil(peak / step) * step

    def x(index: int) -> float:
        return left + (width - left - right) * index / max(1, points - 1)

    def y(value: float) -> float:
        return top + (height - top - bottom) * (1 - value / ceiling)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'font-family="sans-serif" font-size="12" role="img">',
        f"<title>{title}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="20" font-size="14" fill="#1f1f1f">{heading}</text>',
    ]
    for tick in range(0, 5):
        value = ceiling * tick / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="#dddddd"/><text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" '
            f'fill="#444444">{value:,.0f}</text>'
        )
    for index, label in x_labels.items():
        parts.append(
            f'<text x="{x(index):.1f}" y="{height - bottom + 18}" text-anchor="middle" '
            f'fill="#444444">{label}</text>'
        )
    for n, (name, (colour, values)) in enumerate(series.items()):
        line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="{stroke}"/>'
        )
        legend_y = top + 16 + n * 20
        parts.append(
            f'<line x1="{width - right + 12}" x2="{width - right + 32}" y1="{legend_y - 4}" '
            f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="3"/>'
            f'<text x="{width - right + 38}" y="{legend_y}" fill="#1f1f1f">{name}</text>'
        )
    if footer:
        parts.append(f'<text x="{left}" y="{height - 6}" fill="#444444">{footer}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
