"""Report rendering shared by every fleet report: a self-contained HTML page (no scripts,
charts embedded as PNG ``data:`` URIs) and matplotlib figures drawn off-screen (Agg).

Figures are built with :class:`matplotlib.figure.Figure` and an Agg canvas, never through
``pyplot``: no global figure state, no GUI backend, safe in a server thread.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# The report page forbids every script and remote load: images come only from data: URIs.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1b1f24;max-width:70em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #c9ced6;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#57606a}.note{color:#57606a;font-size:.9em}
img{max-width:100%;height:auto}
"""


def new_figure(width_in: float = 8.0, height_in: float = 3.6) -> Figure:
    """A figure with an Agg canvas attached (size in inches, 100 dpi when saved)."""
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def esc(value: object) -> str:
    """Text escaped for HTML (quotes too); ``None`` shows as an em dash."""
    return "—" if value is None else html.escape(str(value), quote=True)


def fmt(value: object, digits: int = 3) -> str:
    """A number for a table: ints as they are, floats with ``digits`` significant digits."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table_html(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An HTML table; numbers are right-aligned, everything is escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for value in row:
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cls = ' class="n"' if numeric else ""
            cells.append(f"<td{cls}>{esc(fmt(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def image_html(png: bytes, alt: str) -> str:
    """An ``<img>`` of a PNG embedded as a data: URI."""
    return f'<img src="{png_data_uri(png)}" alt="{esc(alt)}">'


@dataclass(slots=True)
class Section:
    """One titled part of a report: already-escaped HTML blocks (tables, images, notes)."""

    title: str
    blocks: list[str] = field(default_factory=list)

    def paragraph(self, text: str, note: bool = False) -> Section:
        cls = ' class="note"' if note else ""
        self.blocks.append(f"<p{cls}>{esc(text)}</p>")
        return self

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Section:
        self.blocks.append(table_html(headers, rows))
        return self

    def image(self, png: bytes, alt: str) -> Section:
        self.blocks.append(image_html(png, alt))
        return self


def html_page(title: str, sections: Sequence[Section], meta: dict[str, object]) -> str:
    """A complete report page: title, a line of metadata (filters, generated at), sections.

    The page carries a Content-Security-Policy that allows no script at all."""
    meta_text = " · ".join(f"{k}: {fmt(v)}" for k, v in meta.items() if v is not None)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{esc(meta_text)}</p>',
    ]
    for section in sections:
        parts.append(f"<section><h2>{esc(section.title)}</h2>{''.join(section.blocks)}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = [
    "REPORT_CSP",
    "Section",
    "esc",
    "figure_png",
    "fmt",
    "html_page",
    "image_html",
    "new_figure",
    "png_data_uri",
    "table_html",
]
