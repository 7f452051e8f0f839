"""``OUT/index.html``: a static, self-contained browser view of an augmentation run.

Layout written under the output folder ``OUT``::

    OUT/index.html               header (counts, time, ranks, config) + rows 1..page_size
    OUT/report/page-2.html ...   further rows, page_size per page, same table
    OUT/report/thumbs/<hash>.png PNG thumbnails of the inputs (content, style references)

Outputs, masks and heat maps already are PNGs inside ``OUT`` and are linked directly.
Inputs live outside ``OUT`` and may be DICOM or TIFF, so they are shown as small PNG
thumbnails named by a hash of (path, size, mtime, crop): a rerun after a resume only makes the
missing ones. An input that cannot be read shows a placeholder with the reason; the report
never fails because of one file. All links are relative, there is no JavaScript and nothing is
fetched from the network; images load lazily. The same manifest and summary give the same
bytes (rows are ordered by output path; a file whose content is unchanged is not rewritten).

    python -m tf_usaug.report.run_index OUT [--page-size 100]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from collections import Counter
from pathlib import Path

from tf_usaug.data.image_io import read_image, resize
from tf_usaug.files import atomic_write_bytes, encode_png
from tf_usaug.report.html import (Markup, chips, data_table, details, esc, fmt, image, join,
                                  kv_table, page, pager, placeholder, rel_href, tag)

MANIFEST = "manifest.jsonl"
SUMMARY = "summary.json"
INDEX = "index.html"
REPORT_DIR = "report"
THUMB_DIR = "thumbs"
THUMB_SIDE = 128  # longest side of an input thumbnail, pixels
_PAGE_RE = re.compile(r"^page-(\d+)\.html$")
_LOSS_ORDER = ("content", "style", "total")


def read_manifest(path: str | os.PathLike) -> tuple[list[dict], int]:
    """Rows of a manifest (JSON lines) and how many lines could not be parsed (e.g. cut off)."""
    rows, bad = [], 0
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def _read_summary(out: Path) -> dict:
    try:
        data = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ordered(rows) -> list[dict]:
    """One row per output (the last one written wins), sorted by output path."""
    by_output: dict[str, dict] = {}
    for i, row in enumerate(rows):
        key = str(row.get("output") or f"\0{i}")
        by_output[key] = row
    return [by_output[k] for k in sorted(by_output)]


def _crop_box(crop) -> tuple[int, int, int, int] | None:
    try:
        y0, y1, x0, x1 = (int(v) for v in crop)
    except (TypeError, ValueError):
        return None
    return (y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None


class _Thumbs:
    """PNG thumbnails of input images under ``OUT/report/thumbs``, made once per input+crop."""

    def __init__(self, out: Path):
        self.out = out
        self.folder = out / REPORT_DIR / THUMB_DIR
        self._cache: dict[tuple, tuple[Path | None, str]] = {}

    def get(self, source, crop=None) -> tuple[Path | None, str]:
        """(thumbnail path, "") or (None, message saying why there is none)."""
        src = Path(source)
        if not src.is_absolute():
            src = self.out / src
        box = _crop_box(crop)
        key = (str(src), box)
        if key not in self._cache:
            self._cache[key] = self._make(src, box)
        return self._cache[key]

    def _make(self, src: Path, box) -> tuple[Path | None, str]:
        try:
            st = src.stat()
        except OSError:
            return None, f"missing input: {src}"
        ident = json.dumps([str(src), st.st_size, st.st_mtime_ns, box, THUMB_SIDE])
        thumb = self.folder / (hashlib.sha1(ident.encode()).hexdigest()[:24] + ".png")
        if thumb.is_file():
            return thumb, ""
        try:
            img, _ = read_image(src)
            if box is not None:
                h, w = img.shape
                y0, y1, x0, x1 = box
                region = img[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
                img = region if region.size else img
            h, w = img.shape
            scale = min(1.0, THUMB_SIDE / max(h, w))
            if scale < 1.0:
                img = resize(img, (max(1, round(h * scale)), max(1, round(w * scale))))
            atomic_write_bytes(thumb, encode_png(img))
        except Exception as exc:  # noqa: BLE001 - any unreadable input is a placeholder
            return None, f"cannot show input: {exc}"
        return thumb, ""


def _page_path(out: Path, number: int) -> Path:
    return out / INDEX if number == 1 else out / REPORT_DIR / f"page-{number}.html"


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return fmt(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {sec:02d} s") + \
        f" ({seconds:.0f} s)"


class _Renderer:
    def __init__(self, out: Path, thumbs: _Thumbs):
        self.out, self.thumbs, self.base = out, thumbs, out

    def out_image(self, value, what: str) -> Markup:
        """An image inside OUT: lazy <img>, '—' when the row has none, placeholder if missing."""
        if not value:
            return tag("span", "\u2014", class_="none")
        path = self.out / value  # an absolute value stays as it is
        if not path.is_file():
            return placeholder(f"missing {what}: {value}")
        return image(rel_href(path, self.base), alt=f"{what} {path.name}", title=str(value))

    def input_image(self, source, crop=None, what="input") -> Markup:
        if not source:
            return tag("span", "\u2014", class_="none")
        thumb, message = self.thumbs.get(source, crop)
        if thumb is None:
            return placeholder(message)
        return image(rel_href(thumb, self.base), alt=f"{what} {Path(source).name}",
                     title=str(source))

    def content_cell(self, row: dict) -> Markup:
        src = row.get("content")
        notes = [Path(src).name] if src else []
        box = _crop_box(row.get("crop"))
        if box:
            notes.append("crop y %d:%d, x %d:%d" % box)
        if row.get("fit"):
            notes.append(f"fit: {row['fit']}")
        cap = join((tag("div", n) for n in notes))
        return self.input_image(src, row.get("crop"), "content") + tag("div", cap, class_="cap")

    def styles_cell(self, row: dict) -> Markup:
        styles = row.get("styles") or []
        if not styles:
            return tag("span", "\u2014", class_="none")
        imgs = [self.input_image(s, None, "style") for s in styles]
        return tag("div", join(imgs), class_="thumbs")

    @staticmethod
    def info_cell(row: dict) -> Markup:
        label = row.get("label")
        head = (tag("span", label, class_="tag") + Markup(" ")) if label is not None else ""
        items = [("method", row.get("method")), ("k", row.get("k")), ("seed", row.get("seed")),
                 ("rank", row.get("rank")), ("iterations", row.get("iterations")),
                 ("srad", row.get("srad")), ("seconds", row.get("seconds"))]
        items = [(k, v) for k, v in items if v is not None]
        return esc(head) + chips(items)

    @staticmethod
    def losses_cell(row: dict) -> Markup:
        losses = row.get("losses") or {}
        if isinstance(losses, dict) and losses:
            first = losses.get("initial") or {}
            last = losses.get("final") or {}
            names = [n for n in _LOSS_ORDER if n in first or n in last]
            names += sorted((set(first) | set(last)) - set(names))
            rows = [(n, first.get(n), last.get(n)) for n in names]
            return data_table(("loss", "initial", "final"), rows, cls="small", numeric=(1, 2))
        params = row.get("params")
        if isinstance(params, dict) and params:
            return chips(sorted(params.items()))
        return tag("span", "\u2014", class_="none")

    def table(self, rows: list[dict], first_number: int) -> Markup:
        body = []
        for n, row in enumerate(rows, start=first_number):
            body.append([Markup(f'<span id="r{n}">{n}</span>'), self.content_cell(row),
                         self.styles_cell(row),
                         self.out_image(row.get("output"), "output")
                         + tag("div", Path(str(row.get("output") or "")).name, class_="cap"),
                         self.out_image(row.get("mask"), "mask"),
                         self.out_image(row.get("heatmap"), "heatmap"),
                         self.info_cell(row), self.losses_cell(row)])
        headers = ("#", "content", "style references", "output", "mask", "heatmap",
                   "label / settings", "losses (nst) / params")
        return data_table(headers, body, numeric=(0,))


def _header(out: Path, rows: list[dict], summary: dict, bad_lines: int, pages: int,
            base: Path) -> Markup:
    counts = [("images", summary.get("images", len(rows))),
              ("expected", summary.get("expected_images")),
              ("complete", summary.get("complete")),
              ("generated this run", summary.get("generated_this_run")),
              ("rows in manifest", len(rows))]
    labels = Counter(str(r.get("label")) for r in rows if r.get("label") is not None)
    if labels:
        counts.append(("per label", ", ".join(f"{k}: {v}" for k, v in sorted(labels.items()))))
    methods = Counter(str(r.get("method")) for r in rows if r.get("method") is not None)
    if methods:
        counts.append(("per method", ", ".join(f"{k}: {v}" for k, v in sorted(methods.items()))))
    skipped = summary.get("skipped") or []
    counts.append(("skipped inputs", len(skipped)))
    if bad_lines:
        counts.append(("unreadable manifest lines",
                       Markup(tag("span", bad_lines, class_="bad"))))
    counts = [(k, v) for k, v in counts if v is not None]
    timing = [("wall time", _duration(summary.get("seconds"))),
              ("images / second", summary.get("images_per_second")),
              ("ranks", summary.get("ranks")), ("pages", pages)]
    timing = [(k, v) for k, v in timing if v is not None]
    cards = [tag("div", tag("h2", "Counts") + kv_table(counts), class_="card"),
             tag("div", tag("h2", "Time") + kv_table(timing), class_="card")]
    per_rank = [r for r in summary.get("per_rank") or [] if isinstance(r, dict)]
    if per_rank:
        keys = list(dict.fromkeys(["rank", "host", *(k for r in per_rank for k in r)]))
        keys = [k for k in keys if any(k in r for r in per_rank)]
        numeric = [i for i, k in enumerate(keys) if k != "host"]
        table = data_table(keys, ([r.get(k) for k in keys] for r in per_rank), cls="small",
                           numeric=numeric)
        cards.append(tag("div", tag("h2", "Ranks") + table, class_="card"))
    parts = [tag("div", join(cards), class_="cards")]
    if skipped:
        rows_ = [(s.get("path"), s.get("reason")) if isinstance(s, dict) else (s, "")
                 for s in skipped]
        parts.append(details(f"Skipped input files ({len(skipped)})",
                             data_table(("path", "reason"), rows_), open_=len(skipped) <= 10))
    config = summary.get("config")
    if isinstance(config, dict) and config:
        parts.append(details(f"Configuration ({len(config)} settings)",
                             kv_table(sorted(config.items())), open_=False))
    manifest = out / MANIFEST
    files = [tag("a", "manifest.jsonl", href=rel_href(manifest, base))] if manifest.is_file() \
        else []
    if (out / SUMMARY).is_file():
        files.append(tag("a", "summary.json", href=rel_href(out / SUMMARY, base)))
    if files:
        parts.append(tag("div", Markup("Files: ") + join(files, " \u00b7 "), class_="sub"))
    return join(parts)


def write_run_index(out_dir: str | os.PathLike, rows=None, summary: dict | None = None,
                    page_size: int = 100) -> Path:
    """Write ``OUT/index.html`` (and ``OUT/report/page-N.html``); return the index path.

    Args:
        out_dir: the run's output folder.
        rows: manifest rows (dicts); None reads ``OUT/manifest.jsonl``.
        summary: the run summary; None reads ``OUT/summary.json`` (empty when absent).
        page_size: rows per page (the first page is ``index.html``).
    """
    out = Path(out_dir)
    bad_lines = 0
    if rows is None:
        rows, bad_lines = read_manifest(out / MANIFEST)
    if summary is None:
        summary = _read_summary(out)
    rows = _ordered(rows)
    page_size = max(1, int(page_size))
    pages = max(1, math.ceil(len(rows) / page_size))
    renderer = _Renderer(out, _Thumbs(out))
    title = f"Augmentation run \u2014 {out.resolve().name}"
    method = summary.get("method") or ", ".join(sorted({str(r.get("method")) for r in rows
                                                        if r.get("method")}))
    for number in range(1, pages + 1):
        path = _page_path(out, number)
        base = renderer.base = path.parent
        start = (number - 1) * page_size
        chunk = rows[start:start + page_size]
        href = lambda n, base=base: rel_href(_page_path(out, n), base)  # noqa: E731
        shown = f"rows {start + 1}\u2013{start + len(chunk)} of {len(rows)}" if chunk \
            else "no rows yet"
        sub = f"{method or 'augmentation'} \u00b7 {shown} \u00b7 page {number} of {pages}"
        parts = [tag("h1", title), tag("div", sub, class_="sub")]
        if number == 1:
            parts.append(_header(out, rows, summary, bad_lines, pages, base))
        else:
            parts.append(tag("div", Markup("Run summary, configuration and ranks: ")
                             + tag("a", "index.html", href=href(1)), class_="sub"))
        nav = pager(number, pages, href)
        parts += [nav, renderer.table(chunk, start + 1) if chunk
                  else tag("p", "No outputs in the manifest yet.", class_="none"), nav]
        data = page(title if number == 1 else f"{title} (page {number})",
                    join(parts, "\n")).encode("utf-8")
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(path, data)
    report = out / REPORT_DIR
    if report.is_dir():  # pages left over from a run with more rows or a smaller page size
        for old in report.iterdir():
            match = _PAGE_RE.match(old.name)
            if match and int(match.group(1)) > pages:
                old.unlink(missing_ok=True)
    return out / INDEX


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write OUT/index.html for a run's outputs.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args(argv)
    if not args.out_dir.is_dir():
        parser.error(f"{args.out_dir}: not a folder")
    print(write_run_index(args.out_dir, page_size=args.page_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
