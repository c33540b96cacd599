"""A report's blocks rendered as Markdown and as one self-contained HTML page (figures embedded,
text escaped: a transcript cannot inject markup), readable on a narrow window."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Block:
    """One piece of the report, rendered alike in Markdown and HTML: a heading ("h1" to "h3"),
    a paragraph ("p"), a table ("table": header and rows), code ("pre") or figures ("img")."""

    kind: str
    text: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)


def markdown(blocks: list[Block]) -> str:
    def cell(text) -> str:
        return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")

    lines: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(b.kind[1]) + " " + cell(b.text), ""]
        elif b.kind == "p":
            lines += [cell(b.text), ""]
        elif b.kind == "pre":
            lines += ["```bash", b.text, "```", ""]
        elif b.kind == "img":
            lines += [f"![{p.name}]({p.resolve()})" for p in b.images] + [""]
        elif b.kind == "table":
            lines += ["| " + " | ".join(map(cell, b.header)) + " |"]
            lines += ["|" + " --- |" * len(b.header)]
            lines += ["| " + " | ".join(map(cell, row)) + " |" for row in b.rows] + [""]
    return "\n".join(lines)


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:0 12px;
line-height:1.4;color:#222}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #ddd}
.scroll{overflow-x:auto;margin:0.5em 0}
table{border-collapse:collapse;font-size:0.9em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
tbody tr:nth-child(even){background:#fafafa}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
figure{margin:0.5em 0}img{max-width:100%;height:auto}
figcaption{font-size:0.8em;color:#666}
"""


def html_page(blocks: list[Block]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>dsmlab report</title><style>{STYLE}</style></head><body>",
    ]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            parts.append(f"<{b.kind}>{e(b.text)}</{b.kind}>")
        elif b.kind == "p":
            parts.append(f"<p>{e(b.text)}</p>")
        elif b.kind == "pre":
            parts.append(f"<pre>{e(b.text)}</pre>")
        elif b.kind == "img":
            parts += [_img(p) for p in b.images]
        elif b.kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows
            )
            parts.append(
                f"<div class='scroll'><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table></div>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    name = html.escape(path.name)
    return (
        f"<figure><img alt='{name}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{name}</figcaption></figure>"
    )
