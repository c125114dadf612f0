"""Small charts drawn on the server as inline SVG (no JavaScript, readable without colour)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def bars(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 640,
    height: int = 160,
    unit: str = "",
) -> Markup:
    """A vertical bar chart of ``points`` (label, value), each bar labelled with its value."""
    n = max(1, len(points))
    top = max((v for _, v in points), default=0) or 1
    plot_h = height - 36
    slot = width / n
    bar_w = max(2.0, slot * 0.7)
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(points):
        h = plot_h * value / top
        x = i * slot + (slot - bar_w) / 2
        y = 14 + plot_h - h
        text = f"{value:g}{unit}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'class="bar"><title>{escape(label)}: {escape(text)}</title></rect>'
        )
        if value:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{y - 2:.1f}" class="value" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" class="label" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
