"""The small SVG bar chart of the last hour's tasks per minute that the overview shows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup


def bar_chart(series: Sequence[dict[str, Any]], width: int = 360, height: int = 60) -> Markup:
    """An inline SVG bar per minute of `/status`'s `throughput`, failed stacked on processed, scaled to the busiest.

    Numbers and times only, so nothing needs escaping.
    """
    totals = [int(m["processed"]) + int(m["failed"]) for m in series]
    peak = max(totals, default=0) or 1
    step = width / max(len(series), 1)
    bars = []
    for i, minute in enumerate(series):
        x, bar_width = f"{i * step:.1f}", f"{max(step - 1, 1):.1f}"
        processed, failed = int(minute["processed"]) / peak * height, int(minute["failed"]) / peak * height
        at = datetime.fromtimestamp(int(minute["minute"]), UTC).strftime("%H:%M")
        title = f"<title>{at} UTC: {minute['processed']:d} processed, {minute['failed']:d} failed</title>"
        bars.append(f'<g>{title}<rect x="{x}" y="{height - processed:.1f}" width="{bar_width}" '
                    f'height="{processed:.1f}"/><rect class="failed" x="{x}" y="{height - processed - failed:.1f}" '
                    f'width="{bar_width}" height="{failed:.1f}"/></g>')
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'role="img" aria-label="tasks per minute, last hour (peak {peak})">{"".join(bars)}</svg>')
