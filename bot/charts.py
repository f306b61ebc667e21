"""Mood-over-time chart as PNG bytes. Pure and blocking: call it in a worker thread."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

MAX_LABELLED_BUCKETS = 16
MIN_VISIBLE_BUCKETS = 7
MOOD_COLOURS = {"positive": "#3ba55d", "neutral": "#99aab5", "negative": "#ed4245"}


def mood_chart(
    series: Sequence[tuple[datetime, Mapping[str, int]]], *, title: str, bucket: str = "day"
) -> bytes:
    """Stacked bars of positive / neutral / negative predictions per bucket, plus the share of
    positive among the voiced (non-neutral) ones as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    try:
        if not series:
            ax.text(0.5, 0.5, "no predictions in this period", ha="center", va="center")
            ax.set_axis_off()
        else:
            times = np.array([t.replace(tzinfo=None) for t, _ in series], dtype="datetime64[s]")
            step_s = {"hour": 3600, "day": 86_400, "week": 604_800}.get(bucket, 86_400)
            width = step_s / 86_400 * 0.8  # matplotlib dates are in days
            bottom = [0] * len(series)
            for mood in ("negative", "neutral", "positive"):
                counts = [c.get(mood, 0) for _, c in series]
                ax.bar(
                    times,
                    counts,
                    width=width,
                    bottom=bottom,
                    label=mood,
                    color=MOOD_COLOURS[mood],
                    align="center",
                )
                bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
            ax.set_ylabel(f"messages per {bucket}")
            share_ax = ax.twinx()
            shares = []
            for _, c in series:
                voiced = c.get("positive", 0) + c.get("negative", 0)
                shares.append(c.get("positive", 0) / voiced if voiced else float("nan"))
            share_ax.plot(
                times,
                shares,
                "o-",
                color="black",
                linewidth=1.2,
                markersize=3,
                label="share positive",
            )
            share_ax.set_ylim(0, 1)
            share_ax.set_ylabel("share positive (of non-neutral)")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts are whole
            if len(series) <= MAX_LABELLED_BUCKETS:
                ax.set_xticks(times)  # one label per bar, never repeated
            if len(series) < MIN_VISIBLE_BUCKETS:  # a lone bar would fill the whole width
                pad = np.timedelta64(int(step_s * MIN_VISIBLE_BUCKETS / 2), "s")
                ax.set_xlim(times[0] - pad, times[-1] + pad)
            pattern = "%m-%d %H:00" if bucket == "hour" else "%m-%d"
            ax.xaxis.set_major_formatter(mdates.DateFormatter(pattern))  # type: ignore[no-untyped-call]
            fig.autofmt_xdate()
            handles, labels = ax.get_legend_handles_labels()
            h2, l2 = share_ax.get_legend_handles_labels()
            ax.legend(handles + h2, labels + l2, loc="upper left", fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)
