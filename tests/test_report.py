"""The run report: HTML helpers, OUT/index.html on a synthetic run, and a real headless Chromium.

The browser tests drive Debian's ``chromium`` over the Chrome DevTools Protocol on a pipe
(``--remote-debugging-pipe``: NUL-separated JSON on file descriptors 3 and 4), so they need no
Python package beyond the standard library and no network port. The ``chromium`` fixture
installs the package with apt-get when it is missing (like tests/slurm_cluster.py does for
SLURM) and skips when that is impossible (not root, no apt-get, install failed).
"""
from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest

from tf_usaug.files import write_json, write_png
from tf_usaug.report import html as H
from tf_usaug.report.run_index import read_manifest, write_run_index

N_CONTENT, K = 60, 4          # 240 rows, 3 pages of 100
ODD_LABEL = 'a<b & "c"'
ODD_NAME = 'naïve #1 & <b>"scan" 50%.png'


# ----------------------------------------------------------------------------- HTML helpers


def test_esc_and_markup():
    assert H.esc('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert H.esc(H.Markup("<b>")) == "<b>"
    assert H.esc(None) == ""
    cell = H.tag("td", "<script>", title='"x"&', class_="c")
    assert cell == '<td title="&quot;x&quot;&amp;" class="c">&lt;script&gt;</td>'
    assert H.tag("details", "x", open=True, hidden=False) == "<details open>x</details>"
    table = H.data_table(["<h>"], [["a&b", H.Markup("<i>ok</i>"), 0.123456789]])
    assert "&lt;h&gt;" in table and "a&amp;b" in table and "<i>ok</i>" in table
    assert "0.1235" in table
    kv = H.kv_table({"k<": {"n": [1, 2]}, "flag": True})
    assert "k&lt;" in kv and "{&quot;n&quot;: [1, 2]}" in kv and "yes" in kv


def test_rel_href_is_relative_and_encoded(tmp_path):
    target = tmp_path / "images" / ODD_LABEL / ODD_NAME
    href = H.rel_href(target, tmp_path)
    assert href == "images/a%3Cb%20%26%20%22c%22/na%C3%AFve%20%231%20%26%20%3Cb%3E%22scan%22" \
                   "%2050%25.png"
    assert unquote(href) == f"images/{ODD_LABEL}/{ODD_NAME}"
    assert H.rel_href(tmp_path / "index.html", tmp_path / "report") == "../index.html"
    img = H.image(href, alt=ODD_NAME)
    assert 'loading="lazy"' in img and "<b>" not in img and f'href="{href}"' in img


def test_pager():
    assert H.page_numbers(1, 1) == [1]
    assert H.page_numbers(5, 20) == [1, None, 3, 4, 5, 6, 7, None, 20]
    assert H.page_numbers(1, 4) == [1, 2, 3, 4]
    assert H.pager(1, 1, str) == ""
    first = H.pager(1, 3, lambda n: f"p{n}.html")
    assert 'href="p2.html"' in first and 'href="p0.html"' not in first
    assert '<span class="cur">1</span>' in first
    last = H.pager(3, 3, lambda n: f"p{n}.html")
    assert 'rel="prev" href="p2.html"' in last.replace('href="p2.html" rel="prev"',
                                                        'rel="prev" href="p2.html"')
    assert "p4.html" not in last


def test_page_is_self_contained():
    doc = H.page("t<", H.tag("p", "x"))
    assert doc.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in doc
    assert "<title>t&lt;</title>" in doc and "<style>" in doc
    assert "http" not in doc.replace('name="viewport"', "")


# ----------------------------------------------------------------------------- synthetic run


def _gradient(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    return np.clip((x + y) / (h + w) * 0.8 + rng.random((h, w)) * 0.2, 0, 1)


def build_run(root: Path, n_content: int = N_CONTENT, k: int = K) -> Path:
    """Inputs outside OUT and an OUT folder like an augmentation job leaves behind."""
    inputs, out = root / "inputs", root / "OUT"
    styles = [inputs / "styles" / "style_a.png", inputs / "styles" / "style b.png"]
    for i, s in enumerate(styles):
        write_png(s, _gradient(90, 70, 100 + i))
    import tifffile
    tiff_style = inputs / "styles" / "style_c.tif"
    tifffile.imwrite(tiff_style, (_gradient(60, 60, 7) * 65535).astype(np.uint16))
    styles.append(tiff_style)
    rows = []
    for i in range(n_content):
        label = ODD_LABEL if i == 1 else ("benign", "malignant")[i % 2]
        name = ODD_NAME if i == 1 else f"img_{i:03d}.png"
        content = inputs / label / name
        if i != 2:  # content #2 is missing on disk
            write_png(content, _gradient(80, 96, i))
        method = ("nst", "nst", "traditional", "srad")[i % 4] if i > 2 else "nst"
        for j in range(k):
            stem = Path(name).stem + f"__{method}{j:03d}"
            output = f"images/{label}/{stem}.png"
            write_png(out / output, _gradient(64, 64, 1000 * i + j))
            mask = f"images/{label}/{stem}_mask.png" if i % 3 == 0 else None
            if mask:
                write_png(out / mask, _gradient(64, 64, 5) > 0.5)
            row = {"output": output, "mask": mask, "content": str(content), "label": label,
                   "method": method, "k": j, "seed": 1000 * i + j, "global_seed": 0,
                   "srad": True, "rank": (i + j) % 2, "seconds": 0.5 + j, "content_masks": [],
                   "heatmap": None, "params": {}}
            if method == "nst":
                heat = f"heatmaps/{label}/{stem}.png"
                write_png(out / heat, _gradient(64, 64, 9))
                row.update(heatmap=heat, styles=[str(styles[j % 3]), str(styles[(j + 1) % 3])],
                           iterations=150,
                           losses={"initial": {"content": 0.0, "style": 3.2 + i, "total": 3.2},
                                   "final": {"content": 0.4, "style": 0.01, "total": 0.41}})
            else:
                row["params"] = {"gamma": 0.9, "flip": j % 2 == 0}
            if i % 5 == 0:
                row.update(crop=[10, 70, 8, 88], fit="crop")
            rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]),
                                        encoding="utf-8")
    write_json(out / "summary.json", {
        "images": len(rows), "expected_images": len(rows) + 4, "complete": False,
        "generated_this_run": 17, "seconds": 3725.5, "images_per_second": 0.5, "ranks": 2,
        "per_rank": [{"rank": r, "images": len(rows) // 2, "busy_seconds": 100.0 + r,
                      "idle_seconds": 1.5, "prepare_seconds": 2.0, "cpus": 8,
                      "host": f"node<{r}>"} for r in range(2)],
        "method": "nst", "skipped": [{"path": str(inputs / "bad.png"), "reason": "not <PNG>"}],
        "config": {"input_dir": str(inputs), "k": k, "iterations": 150, "style_weight": 1e-2,
                   "fit": "crop", "labels": ["benign", "malignant"]}})
    return out


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href"):
                self.refs.append((tag, value))
                if tag == "img":
                    self.imgs.append(value)


def _links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _pages(out: Path) -> list[Path]:
    extra = sorted((out / "report").glob("page-*.html"), key=lambda p: int(p.stem[5:]))
    return [out / "index.html", *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = build_run(tmp_path_factory.mktemp("run"))
    assert write_run_index(out) == out / "index.html"
    return out


def test_every_row_once_and_links_resolve(run):
    pages = _pages(run)
    assert [p.name for p in pages] == ["index.html", "page-2.html", "page-3.html"]
    texts = [p.read_text(encoding="utf-8") for p in pages]
    assert [t.count('<span id="r') for t in texts] == [100, 100, N_CONTENT * K - 200]
    rows, _ = read_manifest(run / "manifest.jsonl")
    outputs = sorted(r["output"] for r in rows)
    shown = []
    for page in pages:
        links = _links(page)
        for tag, ref in links.refs:
            assert "://" not in ref and not ref.startswith("/"), (page, ref)
            if ref.startswith("data:"):
                continue
            target = (page.parent / unquote(ref)).resolve()
            assert target.is_file(), (page, ref)
            assert run.resolve() in target.parents, ref  # nothing outside OUT is linked
        shown += [str((page.parent / unquote(s)).resolve().relative_to(run.resolve()))
                  for s in links.imgs if "/images/" in f"/{unquote(s)}"
                  and not unquote(s).endswith("_mask.png")]
    assert sorted(shown) == outputs  # sorted by output path, every output exactly once
    assert "http" not in "".join(texts).replace('name="viewport"', "")


def test_header_and_escaping(run):
    text = (run / "index.html").read_text(encoding="utf-8")
    for expected in ("Counts", "Ranks", "Configuration (6 settings)", "style_weight",
                     "1 h 02 min", "node&lt;1&gt;", "not &lt;PNG&gt;", "generated this run",
                     "Skipped input files (1)", "benign: 120"):
        assert expected in text, expected
    everything = "".join(p.read_text(encoding="utf-8") for p in _pages(run))
    assert '<b>"scan' not in everything and ODD_LABEL not in everything
    assert H.esc(ODD_LABEL) in everything and H.esc(ODD_NAME) in everything
    assert everything.count('class="ph"') == K  # content #2 is missing: one per row
    assert f"missing input: {run.parent / 'inputs' / 'benign' / 'img_002.png'}" in everything
    assert "crop y 10:70, x 8:88" in everything and "fit: crop" in everything
    assert "gamma" in everything and "3.2" in everything


def test_thumbnails_crop_and_sharing(run):
    thumbs = sorted((run / "report" / "thumbs").glob("*.png"))
    # one per readable content (each is always shown with the same crop) and per style
    assert len(thumbs) == (N_CONTENT - 1) + 3
    shapes = {cv2.imread(str(t), cv2.IMREAD_UNCHANGED).shape for t in thumbs}
    assert (60, 80) in shapes and (80, 96) in shapes and (90, 70) in shapes


def test_rerun_is_idempotent_and_reuses_thumbs(run):
    pages = {p: p.read_bytes() for p in _pages(run)}
    thumbs = {t: t.stat().st_mtime_ns for t in (run / "report" / "thumbs").iterdir()}
    before = {p: p.stat().st_mtime_ns for p in pages}
    time.sleep(0.01)
    write_run_index(run)
    assert {p: p.read_bytes() for p in _pages(run)} == pages
    assert {p: p.stat().st_mtime_ns for p in pages} == before  # unchanged files not rewritten
    assert {t: t.stat().st_mtime_ns for t in (run / "report" / "thumbs").iterdir()} == thumbs


def test_paging_links_and_stale_pages(tmp_path):
    out = build_run(tmp_path, n_content=10, k=3)  # 30 rows
    write_run_index(out, page_size=7)
    pages = _pages(out)
    assert len(pages) == 5
    for number, page in enumerate(pages, start=1):
        text = page.read_text(encoding="utf-8")
        nav = [r for t, r in _links(page).refs if t == "a" and r.endswith(".html")]
        for ref in nav:
            assert (page.parent / ref).resolve() in {p.resolve() for p in pages}
        if number > 1:
            assert 'rel="prev"' in text and "index.html" in " ".join(nav)
        if number < len(pages):
            assert 'rel="next"' in text
    write_run_index(out, page_size=15)
    assert [p.name for p in _pages(out)] == ["index.html", "page-2.html"]


def test_empty_and_damaged_manifest(tmp_path):
    out = tmp_path / "OUT"
    out.mkdir()
    index = write_run_index(out)
    assert "No outputs in the manifest yet." in index.read_text(encoding="utf-8")
    (out / "manifest.jsonl").write_text('{"output": "a.png", "content": "/nope/x.dcm"}\n{"outp',
                                        encoding="utf-8")
    text = write_run_index(out).read_text(encoding="utf-8")
    assert "unreadable manifest lines" in text and "missing output: a.png" in text
    assert "missing input: /nope/x.dcm" in text


# ----------------------------------------------------------------------------- browser

PACKAGE = "chromium"


def _ensure_chromium(timeout: float = 600) -> str:
    """Path of Debian's chromium, apt-get installing it when missing; skips when impossible."""
    found = shutil.which(PACKAGE)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium not installed and not root to apt-get install it")
    if shutil.which("apt-get") is None:
        pytest.skip("chromium not installed and apt-get not available")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:  # stale or missing package lists: update once, then retry
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True,
                       timeout=timeout)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    found = shutil.which(PACKAGE)
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        pytest.skip(f"apt-get install {PACKAGE} failed: " + " | ".join(tail))
    return found


# Scroll through the page so lazy images load, then wait for every <img> to finish.
CHECK_IMAGES_JS = """(async () => {
  const frame = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  const done = img => img.complete ? Promise.resolve() : new Promise(r => {
    img.addEventListener('load', r, {once: true});
    img.addEventListener('error', r, {once: true});
    setTimeout(r, 10000); });
  for (let y = 0; y < document.documentElement.scrollHeight; y += window.innerHeight) {
    window.scrollTo(0, y); await frame(); }
  const imgs = Array.from(document.images);
  for (const img of imgs) { if (!img.complete) { img.scrollIntoView(); await done(img); } }
  await Promise.all(imgs.map(done));
  return imgs.map(i => ({src: i.getAttribute('src'), complete: i.complete,
                         width: i.naturalWidth}));
})()"""


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, exe: str, profile: Path):
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()
        # high copies, so the child's dup2 onto 3 and 4 cannot clobber one with the other
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 20) for fd in (to_child, from_child)]

        def child_fds():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log = open(profile.parent / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--window-size=1400,1000", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            pass_fds=(3, 4), preexec_fn=child_fds)
        for fd in (to_child, from_child, *high):
            os.close(fd)
        self._messages: queue.Queue = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buf = b""
        while chunk := os.read(self._read, 1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for m in messages:
                self._messages.put(json.loads(m))

    def call(self, method, params=None, session=None, events=None, timeout=30.0) -> dict:
        """Send one command and wait for its answer; other messages go to ``events``."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._write, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None:
                events.append(reply)

    def check(self, url: str, timeout: float = 30.0) -> dict:
        """Load ``url``; return console errors and the state of every image on the page."""
        events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                            events=events)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session, events=events)
        self.call("Page.navigate", {"url": url}, session=session, events=events)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session
                      for e in events):
            events.append(self._messages.get(timeout=max(0.01, deadline - time.monotonic())))
        result = self.call("Runtime.evaluate", {"expression": CHECK_IMAGES_JS,
                                                "awaitPromise": True, "returnByValue": True},
                           session=session, events=events, timeout=timeout)
        images = result["result"]["value"]
        self.call("Target.closeTarget", {"targetId": target}, events=events)
        errors = []
        for e in events:
            if e.get("sessionId") != session:
                continue
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description")))
                                       for a in p["args"]))
            elif e["method"] == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(f"{p['entry']['text']} {p['entry'].get('url', '')}")
        broken = [i["src"] for i in images if not (i["complete"] and i["width"] > 0)]
        return {"errors": errors, "images": images, "broken": broken}

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it may close the pipe before answering
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._read, self._write):
            os.close(fd)
        self.log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = _ensure_chromium()
    b = Browser(exe, tmp_path_factory.mktemp("chromium") / "profile")
    yield b
    b.close()


def test_browser_pages_load_cleanly(browser, run):
    for page, expect in ((run / "index.html", 100), (run / "report" / "page-3.html", 40)):
        result = browser.check(page.as_uri())
        assert result["errors"] == [], result["errors"]
        assert result["broken"] == [], result["broken"]
        # content + output per row, plus styles, masks and heat maps on most rows
        assert len(result["images"]) > 2 * expect


def test_browser_check_detects_broken_image(browser, tmp_path):
    write_png(tmp_path / "ok.png", _gradient(8, 8, 0))
    bad = tmp_path / "bad.html"
    bad.write_text(H.page("bad", H.Markup('<img src="ok.png" alt="ok">'
                                          '<img src="missing.png" alt="missing">')),
                   encoding="utf-8")
    result = browser.check(bad.as_uri())
    assert result["broken"] == ["missing.png"]
    assert any("ERR_FILE_NOT_FOUND" in e for e in result["errors"]), result["errors"]
    scripted = tmp_path / "console.html"
    scripted.write_text("<!DOCTYPE html><title>x</title><script>console.error('boom')"
                        "</script>", encoding="utf-8")
    assert browser.check(scripted.as_uri())["errors"] == ["boom"]
