"""The smoke book as a reader's browser shows it, with the network off.

Every page is loaded in headless Chromium with every host name unresolvable, so MathJax must
come from the build itself. A small script, added to a copy of each page, waits for MathJax and
reports: raw TeX delimiters left in the text (math not rendered), MathJax errors, and tables
wider than the content column that no scrolling container holds (clipped). One screenshot per
page goes to ``_build/screenshots/`` of the built book. Skipped where Chromium is missing
(``.ci/run`` installs Debian's ``chromium`` when it can).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("smoke_book")]

CHROMIUM = os.environ.get("LRBOOK_CHROMIUM") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # the network is off: no CDN can be reached
]

CHECK = r"""
<script>
window.addEventListener('load', async () => {
  const report = {};
  try { if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; } }
  catch (e) { report.mathjax_error = String(e); }
  await new Promise(r => setTimeout(r, 200));
  const article = document.querySelector('article') || document.body;
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, .highlight').forEach(n => n.remove());
  const text = clone.textContent;
  report.raw_tex = ['\\(', '\\['].filter(d => text.includes(d));
  const dollars = text.match(/\$[^$\s][^$]*[\\^_{][^$]*\$/g) || [];
  report.raw_tex = report.raw_tex.concat(dollars.slice(0, 3));
  report.mathjax = !!window.MathJax;
  report.typeset = document.querySelectorAll('mjx-container').length;
  report.merror = document.querySelectorAll('mjx-merror').length;
  const width = article.getBoundingClientRect().width;
  report.width = width;
  report.clipped = [];
  document.querySelectorAll('article table').forEach((t, i) => {
    const w = t.getBoundingClientRect().width;
    if (w <= width + 1) return;
    let p = t.parentElement, held = false;
    while (p && p !== article) {
      const s = getComputedStyle(p).overflowX;
      if ((s === 'auto' || s === 'scroll') && p.getBoundingClientRect().width <= width + 1) {
        held = true; break;
      }
      p = p.parentElement;
    }
    if (!held) report.clipped.push({table: i, width: Math.round(w),
                                    caption: (t.caption || {}).textContent || ''});
  });
  const pre = document.createElement('pre');
  pre.id = 'lrbook-check';
  pre.textContent = JSON.stringify(report);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium(args: list[str], timeout: int = 90) -> str:
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    return proc.stdout


def check_page(page: Path, screenshot: Path | None = None, width: int = 1280) -> dict:
    """Load ``page`` offline; return the in-page report (and write a screenshot)."""
    page = page.resolve()
    probe = page.with_name(f".lrbook-check-{page.name}")
    probe.write_text(page.read_text().replace("</body>", CHECK + "</body>", 1))
    try:
        dom = _chromium(
            [
                "--virtual-time-budget=20000",
                f"--window-size={width},1600",
                "--dump-dom",
                probe.as_uri(),
            ]
        )
    finally:
        probe.unlink(missing_ok=True)
    m = re.search(r'<pre id="lrbook-check"[^>]*>(.*?)</pre>', dom, flags=re.S)
    if not m:
        raise AssertionError(f"{page}: the check script did not report (page failed to load?)")
    report = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        _chromium(
            [
                "--virtual-time-budget=20000",
                f"--window-size={width},2400",
                f"--screenshot={screenshot}",
                page.as_uri(),
            ]
        )
    return report


def pages(html: Path) -> list[Path]:
    """Every content page of a built book (not search, index or sources)."""
    skip = {"search.html", "genindex.html"}
    return sorted(
        p
        for p in html.rglob("*.html")
        if p.name not in skip
        and not p.name.startswith(".")
        and not {"_static", "_sources", "reports"} & set(p.parts)
        and "</body>" in p.read_text()  # not the index.html redirect stub
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install Debian's chromium to run it")
def test_every_page_renders_math_offline_and_clips_no_table(smoke_book):
    root, _ = smoke_book
    html = root / "_build" / "html"
    shots = root / "_build" / "screenshots"
    problems, math_pages = [], 0
    for page in pages(html):
        name = page.relative_to(html).as_posix().replace("/", "_").removesuffix(".html")
        r = check_page(page, shots / f"{name}.png")
        if r["raw_tex"]:
            problems.append(f"{name}: raw TeX {r['raw_tex']} in the rendered text")
        if r["merror"]:
            problems.append(f"{name}: {r['merror']} MathJax errors")
        if r["clipped"]:
            problems.append(f"{name}: clipped tables {r['clipped']}")
        math_pages += r["typeset"] > 0
    assert not problems, "\n".join(problems)
    assert math_pages >= 5, "MathJax typeset almost nothing: is it served from the build?"
    assert len(list(shots.glob("*.png"))) == len(pages(html))
    index = (html / "book" / "theory.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in index and "cdn.jsdelivr" not in index
