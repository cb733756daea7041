"""Self-contained HTML: inline style, figures embedded as base64 PNG, no script, no
external address (a page opens from a file, offline, and loads nothing else)."""

import base64
import html
import io

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 0 24px 48px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin: 24px 0 4px; }
h2 { font-size: 1.25em; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
p.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: Menlo, Consolas, monospace; font-size: 0.92em; }
figure { margin: 12px 0 24px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9em; max-width: 900px; }
.verdict { font-weight: 600; padding: 1px 6px; border-radius: 3px; white-space: nowrap; }
.v-gradient { background: #d9f0d3; } .v-natural-gradient-constant { background: #e5f5e0; }
.v-natural-gradient { background: #edf8e9; } .v-not-descent { background: #fde0dd; }
.v-no-loss-exists { background: #fee8c8; } .v-fixed-point { background: #eee; }
.status-complete { color: #1a7f37; } .status-diverged, .status-failed { color: #b42318; }
.status-interrupted, .status-running { color: #b54708; }
ul.words li { margin-bottom: 4px; }
nav a { margin-right: 12px; }
.small { font-size: 0.85em; color: #555; }
"""


def esc(value):
    return html.escape(str(value), quote=True)


def png_bytes(fig, dpi=100):
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def img_tag(png, alt):
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def figure_html(heading, caption, png, anchor):
    return (f'<figure id="{esc(anchor)}"><h3>{esc(heading)}</h3>{img_tag(png, heading)}'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def table(headers, rows, numeric=()):
    """An HTML table; cells are escaped unless wrapped in :class:`Raw`."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in numeric else ""
            text = cell.html if isinstance(cell, Raw) else esc(cell)
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(rows):
    """A two-column table of ``(label, value)`` rows, no header."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v.html if isinstance(v, Raw) else esc(v)}</td></tr>"
                   for k, v in rows)
    return f"<table><tbody>{body}</tbody></table>"


class Raw:
    """HTML that :func:`table` inserts as it is."""

    def __init__(self, html_text):
        self.html = html_text


def verdict_badge(verdict):
    v = str(verdict or "–")
    return Raw(f'<span class="verdict v-{esc(v)}">{esc(v)}</span>')


def page(title, body):
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>\n")


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file (never half-written)."""
    import os
    from pathlib import Path

    from ..errors import BadInput

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"{path}: cannot write the page ({error.strerror or type(error).__name__})") from None
    return path
