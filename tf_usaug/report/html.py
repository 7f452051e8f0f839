"""Small building blocks for self-contained HTML reports (no network, no JavaScript).

Every helper returns :class:`Markup` (a ``str`` that is already HTML). Anything else handed to
a helper is treated as text and escaped, so file names and labels holding ``<&"'`` cannot break
the page. Links are relative (:func:`rel_href`) so a report folder can be moved or copied as a
whole; the inline style sheet is the only CSS and nothing is fetched from elsewhere.
"""
from __future__ import annotations

import html as _html
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

CSS = """
:root{--fg:#1d2330;--mute:#667085;--line:#e3e6ec;--bg:#f6f7f9;--acc:#2456a6;--bad:#b42318}
*{box-sizing:border-box}
body{margin:0;padding:16px 22px;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,
 "DejaVu Sans",sans-serif;color:var(--fg);background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 6px}
a{color:var(--acc);text-decoration:none}a:hover{text-decoration:underline}
.sub{color:var(--mute);margin-bottom:10px}
.cards{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px;background:var(--bg)}
.card h2{margin:0 0 6px}
table{border-collapse:collapse}
table.kv td,table.kv th{padding:1px 10px 1px 0;text-align:left;vertical-align:top}
table.kv th{font-weight:600;color:var(--mute);white-space:nowrap}
table.grid{width:100%}
table.grid>thead>tr>th{position:sticky;top:0;background:#fff;z-index:1;text-align:left;
 border-bottom:2px solid var(--line);padding:4px 6px;white-space:nowrap}
table.grid>tbody>tr>td{border-bottom:1px solid var(--line);padding:4px 6px;vertical-align:top}
table.grid>tbody>tr:nth-child(even){background:#fafbfc}
table.small td,table.small th{padding:0 6px 0 0;font-size:12px;text-align:left}
table td.num,table th.num,table.grid>thead>tr>th.num{text-align:right;font-variant-numeric:tabular-nums}
.thumbs{display:flex;flex-wrap:wrap;gap:3px;max-width:230px}
img.t{display:block;width:128px;height:128px;object-fit:contain;background:#000}
.thumbs img.t{width:72px;height:72px}
.chips{display:flex;flex-wrap:wrap;gap:2px 10px;max-width:230px;font-size:12px}
.chips b{font-weight:600;color:var(--mute)}
.cap{font-size:11px;color:var(--mute);max-width:150px;overflow-wrap:anywhere}
.ph{display:inline-block;width:128px;min-height:48px;padding:4px;border:1px dashed var(--bad);
 color:var(--bad);font-size:11px;overflow-wrap:anywhere}
.none{color:var(--mute)}
.tag{display:inline-block;padding:0 5px;border-radius:3px;background:#e8eefb;font-size:12px}
.bad{color:var(--bad)}.ok{color:#067647}
nav.pager{margin:10px 0;display:flex;flex-wrap:wrap;gap:4px;align-items:center}
nav.pager a,nav.pager span{padding:2px 8px;border:1px solid var(--line);border-radius:4px}
nav.pager span.cur{background:var(--acc);color:#fff;border-color:var(--acc)}
nav.pager span.gap,nav.pager span.off{border-color:transparent;color:var(--mute)}
details>summary{cursor:pointer;font-weight:600;margin:6px 0}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
"""


class Markup(str):
    """Text that is already HTML: helpers insert it as is instead of escaping it."""

    __slots__ = ()

    def __add__(self, other) -> "Markup":
        return Markup(str.__add__(self, esc(other)))

    def __radd__(self, other) -> "Markup":
        return Markup(str.__add__(esc(other), self))


def esc(value) -> Markup:
    """HTML for ``value``: :class:`Markup` unchanged, anything else as escaped text."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    # file names that are not valid UTF-8 arrive with surrogate escapes: show U+FFFD instead
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return Markup(_html.escape(text, quote=True))


def join(parts: Iterable, sep: str = "") -> Markup:
    return Markup(sep.join(esc(p) for p in parts))


def tag(name: str, content="", **attrs) -> Markup:
    """``<name attrs>content</name>``; ``class_`` sets ``class``; None/False attrs are left out."""
    words = [name]
    for key, val in attrs.items():
        if val is None or val is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        words.append(key if val is True else f'{key}="{esc(val)}"')
    return Markup(f"<{' '.join(words)}>{esc(content)}</{name}>")


def rel_href(target: str | os.PathLike, base_dir: str | os.PathLike) -> str:
    """URL of ``target`` relative to the folder ``base_dir`` of the page, percent-encoded."""
    rel = os.path.relpath(os.path.abspath(target), os.path.abspath(base_dir))
    return quote(Path(rel).as_posix(), safe="/", errors="surrogateescape")


def link(href: str, text, **attrs) -> Markup:
    return tag("a", text, href=href, **attrs)


def image(href: str, alt="", title=None, cls: str = "t", width=None, height=None) -> Markup:
    """A lazily loaded image that links to itself (click opens the full-size file)."""
    img = Markup(f'<img class="{esc(cls)}" src="{esc(href)}" alt="{esc(alt)}" loading="lazy" '
                 f'decoding="async"'
                 + (f' width="{int(width)}" height="{int(height)}"' if width and height else "")
                 + (f' title="{esc(title)}"' if title else "") + ">")
    return link(href, img)


def placeholder(message) -> Markup:
    """A dashed box with a message, where an image cannot be shown."""
    return tag("span", message, class_="ph", title=str(message))


def fmt(value, digits: int = 4) -> str:
    """Short human form of a scalar (floats to ``digits`` significant digits) or JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{digits}g}"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def kv_table(items: Mapping | Iterable[tuple], cls: str = "kv") -> Markup:
    """Two-column table of keys and values (values through :func:`fmt` unless Markup)."""
    pairs = items.items() if isinstance(items, Mapping) else items
    rows = [tag("tr", tag("th", key) + tag("td", val if isinstance(val, Markup) else fmt(val)))
            for key, val in pairs]
    return tag("table", join(rows), class_=cls)


def chips(items: Mapping | Iterable[tuple]) -> Markup:
    """Compact wrapped ``key value`` pairs (for many small settings in one cell)."""
    pairs = items.items() if isinstance(items, Mapping) else items
    return tag("div", join(tag("span", tag("b", k) + Markup(" ")
                                + (v if isinstance(v, Markup) else fmt(v))) for k, v in pairs),
               class_="chips")


def data_table(headers: Iterable, rows: Iterable[Iterable], cls: str = "grid",
               numeric: Iterable[int] = ()) -> Markup:
    """Table with a sticky header row; cells are Markup or text (scalars via :func:`fmt`)."""
    numeric = set(numeric)
    head = join(tag("th", h, class_="num" if i in numeric else None)
                for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = [tag("td", c if isinstance(c, Markup) else fmt(c),
                     class_="num" if i in numeric else None) for i, c in enumerate(row)]
        body.append(tag("tr", join(cells)))
    return tag("table", tag("thead", tag("tr", head)) + tag("tbody", join(body)), class_=cls)


def details(summary, body, open_: bool = False) -> Markup:
    return tag("details", tag("summary", summary) + esc(body), open=open_)


def page_numbers(current: int, total: int, around: int = 2) -> list[int | None]:
    """Page numbers to show (1-based), None where a run of pages is left out."""
    keep = {1, total, *range(current - around, current + around + 1)}
    out: list[int | None] = []
    for n in range(1, total + 1):
        if n in keep:
            out.append(n)
        elif out and out[-1] is not None:
            out.append(None)
    return out


def pager(current: int, total: int, href: Callable[[int], str]) -> Markup:
    """Static page navigation: previous, numbers (with gaps), next; ``href(n)`` links page n."""
    if total <= 1:
        return Markup("")
    parts = [link(href(current - 1), "\u2039 previous", rel="prev") if current > 1
             else tag("span", "\u2039 previous", class_="off")]
    for n in page_numbers(current, total):
        if n is None:
            parts.append(tag("span", "\u2026", class_="gap"))
        elif n == current:
            parts.append(tag("span", n, class_="cur"))
        else:
            parts.append(link(href(n), n))
    parts.append(link(href(current + 1), "next \u203a", rel="next") if current < total
                 else tag("span", "next \u203a", class_="off"))
    return tag("nav", join(parts), class_="pager")


def page(title, body, css: str = CSS) -> str:
    """A complete HTML5 document: UTF-8, inline CSS, no external resources."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            # An empty data: icon stops browsers from asking for /favicon.ico.
            "<link rel=\"icon\" href=\"data:,\">\n"
            f"<title>{esc(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
            f"{esc(body)}\n</body>\n</html>\n")
