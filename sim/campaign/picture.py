"""The campaign's picture: devices by status over device time above the storage
account's request rate, the outage shaded and each wave's start marked; as a PNG and as
a self-contained HTML page (the figure inline as SVG, the summary as tables).
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from sim.campaign.metrics import STATUSES, WAITING

COLOURS = {
    WAITING: "#c8c8c8",
    "downloading": "#4c8ed9",
    "interrupted": "#f0a030",
    "applying": "#9b6ad6",
    "applied": "#3aa35b",
    "error": "#d64541",
    "invalid": "#7a4a2a",
}


def figure(
    *,
    title: str,
    times: Sequence[float],
    counts: Mapping[str, Sequence[int]],
    rate: Mapping[str, Sequence[int]],
    outage: tuple[float, float] | None,
    waves: Sequence[tuple[float, str]],
) -> Any:
    """The matplotlib figure (Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    order = [WAITING, *STATUSES]
    top.stackplot(
        times,
        *(counts[s] for s in order),
        labels=order,
        colors=[COLOURS[s] for s in order],
        step="post",
        linewidth=0,
    )
    top.set_ylabel("targeted devices")
    fig.suptitle(title, fontsize=11)
    top.legend(
        loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, ncol=len(order), frameon=False
    )
    top.margins(x=0)
    seconds = rate["second"]
    bottom.bar(
        seconds, rate["answered"], width=1.0, align="edge", color="#4c8ed9", label="answered"
    )
    bottom.bar(
        seconds,
        rate["refused"],
        width=1.0,
        align="edge",
        bottom=rate["answered"],
        color="#d64541",
        label="refused (outage)",
    )
    bottom.set_ylabel("requests / s")
    bottom.set_xlabel("device time (s)")
    bottom.legend(loc="upper right", fontsize=8)
    for axis in (top, bottom):
        if outage is not None:
            axis.axvspan(outage[0], outage[1], color="#d64541", alpha=0.12, lw=0)
        for t, _ in waves:
            axis.axvline(t, color="#333333", lw=0.8, ls="--")
    if outage is not None:
        top.text(
            outage[0], top.get_ylim()[1] * 0.98, " outage", color="#a02020", va="top", fontsize=8
        )
    for t, label in waves:
        bottom.text(t, bottom.get_ylim()[1] * 0.95, f" {label}", fontsize=8, va="top")
    fig.tight_layout()
    return fig


def save_png(fig: Any, path: str) -> None:
    fig.savefig(path, dpi=100)


def svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def html_page(*, title: str, figure_svg: str, sections: Sequence[tuple[str, Any]]) -> str:
    """A page with no external resource: the SVG inline, then each section as a table
    (a mapping: two columns; a list of rows: one column per key) or lines (strings)."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;"
        "margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
        "th{background:#f2f2f2}td:first-child{text-align:left}pre{background:#f7f7f7;"
        "padding:.6em}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        figure_svg,
    ]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(_section(body))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(body: Any) -> str:
    if isinstance(body, Mapping):
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
            for k, v in body.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        keys = list(body[0])
        head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r.get(k, '')))}</td>" for k in keys) + "</tr>"
            for r in body
        )
        return f"<table><tr>{head}</tr>{rows}</table>"
    return "<pre>" + html.escape("\n".join(map(str, body))) + "</pre>"
