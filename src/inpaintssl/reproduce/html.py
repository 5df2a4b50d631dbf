"""Markdown (the subset ``report.md`` uses) to one self-contained HTML page that opens offline.

    page = markdown_to_html(md_text, base=Path("repro"), title="Reproduction")

Handled: ``#``-``###`` headings, paragraphs, ``- `` lists, pipe tables, fenced code blocks, an image alone
on its line (``![alt](relative/path.png)``, embedded as a base64 ``data:`` URI; a missing file is shown
as a note), raw ``<details>`` / ``<summary>`` lines, and inline ``code``, ``**bold**``, ``_italic_`` and
``[text](link)``.
Every other character is HTML-escaped. No script, stylesheet, font or image is loaded from anywhere.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: 0.7em; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; }
code { background: #f3f3f3; padding: 0 3px; }
img { max-width: 100%; border: 1px solid #ddd; }
.missing { color: #a00; }
details { margin: 0.5em 0; }
"""
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)$")
_RAW = ("<details", "</details", "<summary")


def inline(text: str) -> str:
    """Escape, then ``code``, **bold**, _italic_ and [text](local link) (code spans are left as they are)."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part, quote=False)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<!\w)_(\S(?:.*?\S)?)_(?!\w)", r"<em>\1</em>", s)
        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', s)
        out.append(s)
    return "".join(out)


def image_tag(alt: str, src: str, base: Path) -> str:
    path = Path(base) / src
    if not path.is_file():
        return f'<p class="missing">[image not available: {html.escape(src)}]</p>'
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    head, rows = _cells(lines[0]), [_cells(r) for r in lines[2:]]
    out = ["<table><thead><tr>", *(f"<th>{inline(c)}</th>" for c in head), "</tr></thead><tbody>"]
    for row in rows:
        out += ["<tr>", *(f"<td>{inline(c)}</td>" for c in row), "</tr>"]
    return "".join(out + ["</tbody></table>"])


def markdown_to_html(md: str, base: Path, title: str) -> str:
    lines, body, i = md.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            body.append(f"<pre>{html.escape(chr(10).join(lines[i + 1:j]))}</pre>")
            i = j + 1
        elif not stripped:
            i += 1
        elif stripped.startswith(_RAW):
            body.append(stripped if not stripped.startswith("<summary") else
                        f"<summary>{inline(re.sub(r'</?summary>', '', stripped))}</summary>")
            i += 1
        elif m := re.match(r"^(#{1,3}) (.*)$", stripped):
            level = len(m[1])
            anchor = re.sub(r"[^a-z0-9]+", "-", m[2].lower()).strip("-")
            body.append(f'<h{level} id="{anchor}">{inline(m[2])}</h{level}>')
            i += 1
        elif m := _IMAGE.match(stripped):
            body.append(image_tag(m[1], m[2], base))
            i += 1
        elif stripped.startswith("|"):
            j = i
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            body.append(_table(lines[i:j]))
            i = j
        elif stripped.startswith("- "):
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{inline(lines[i].strip()[2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not _starts_block(lines[i].strip()):
                para.append(lines[i].strip())
                i += 1
            body.append(f"<p>{inline(' '.join(para))}</p>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _starts_block(s: str) -> bool:
    return (s.startswith(("```", "|", "- ", *_RAW)) or bool(re.match(r"^#{1,3} ", s))
            or bool(_IMAGE.match(s)))
