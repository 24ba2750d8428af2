"""The built sites, opened offline in headless Chromium at 1400 px: every altair chart is drawn,
tables are for people, nothing is wider than the content column, no glyph is missing.

Sites (relative to this repository): the published book, $BOOK_HTML (default _build/html),
and the smoke site, $SMOKE_HTML (default _build/smoke/_build/html). A published chapter page
names at its top a GPU with committed results (skipped, saying so, while no device has
committed notebooks yet). Browser: Debian's chromium at
/usr/bin/chromium (`make browser-deps` installs it; never `playwright install`).
Every request that is not file:, data: or blob: is aborted and counts as a failure,
so a page passes only if it works with no network at all.
Optional: $BROWSER_SCREENSHOTS=<dir> saves a full-page PNG of each page checked.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK_HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
SMOKE_HTML = Path(os.environ.get("SMOKE_HTML", ROOT / "_build" / "smoke" / "_build" / "html"))
VIEWPORT = {"width": 1400, "height": 900}
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
NOT_PAGES = {"_static", "_sources", "_images", "_downloads", "_panels_static"}
CHART_TIMEOUT_MS = 20_000

# altair's HTML templates: <div id="altair-viz-<uuid hex>"></div>, handed to vegaEmbed
CHART_DIV = re.compile(r'<div id="(altair-viz-[0-9a-f]+)"')
META_REFRESH = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.I)
BAD_CONSOLE = re.compile(r"vega|Error loading script|Failed to load resource", re.I)

# Per chart: drawn = vega-embed ran on the div and left an svg/canvas of non-zero size.
CHART_STATE_JS = """() => [...document.querySelectorAll('div[id^="altair-viz-"]')].map(div => {
  const g = div.querySelector(':scope > svg.marks, :scope > canvas.marks, svg, canvas');
  const r = g ? g.getBoundingClientRect() : {width: 0, height: 0};
  const err = div.querySelector('.error');
  return {id: div.id, embedded: div.classList.contains('vega-embed'),
          w: r.width, h: r.height, error: err ? err.textContent : null};
})"""
SETTLED_JS = """() => [...document.querySelectorAll('div[id^="altair-viz-"]')].every(div => {
  if (div.querySelector('.error')) return true;
  const g = div.querySelector('svg, canvas');
  if (!g) return false;
  const r = g.getBoundingClientRect();
  return r.width > 0 && r.height > 0;
})"""
# A chart shown as text (its repr, or altair's "<VegaLite 6 object>" placeholder) was never drawn.
# Layout and text of one page: what a reader would see as broken.
LAYOUT_JS = r"""() => {
  const main = document.querySelector('main') || document.body;
  const article = document.querySelector('article.bd-article') || main;
  const col = article.getBoundingClientRect();
  const wide = [];
  for (const e of article.querySelectorAll('.cell_output *, table, pre, img, svg')) {
    const r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > col.right + 2 && !e.closest('.vega-embed details, .vega-actions'))
      wide.push(`${e.tagName.toLowerCase()}.${e.className && e.className.baseVal === undefined ? e.className : ''}`
                + ` ${Math.round(r.width)}px wide, right edge ${Math.round(r.right)} > ${Math.round(col.right)}`);
    if (wide.length > 5) break;
  }
  const tables = [...article.querySelectorAll('.cell_output table')].map(t => t.innerText).join(' | ');
  const run = document.querySelector('.pi05-run');
  const banner = document.querySelector('.pi05-banner-missing, .pi05-banner-failed');
  // a glyph is missing when the character draws exactly like a character no font has
  const font = getComputedStyle(main).fontFamily;
  const cv = document.createElement('canvas'); cv.width = 40; cv.height = 40;
  const cx = cv.getContext('2d', {willReadFrequently: true});
  const draw = ch => { cx.clearRect(0, 0, 40, 40); cx.font = `24px ${font}`; cx.fillText(ch, 4, 30);
                       return cx.getImageData(0, 0, 40, 40).data.join(','); };
  const tofu = draw(String.fromCodePoint(0x10FFFD));
  const text = article.innerText;
  const chars = [...new Set([...text].filter(c => c.codePointAt(0) > 0x7E && !/\s/.test(c)
                                               && !/[㐀-鿿　-〿＀-￯]/.test(c)))];
  const missing = chars.filter(c => draw(c) === tofu).map(c => `U+${c.codePointAt(0).toString(16)} ${c}`);
  const untranslated = [...article.querySelectorAll('h1, h2, h3, p, td, th, li')]
    .filter(e => /[一-鿿]/.test(e.innerText) && !/[A-Za-z]{3,}/.test(e.innerText.replace(/[一-鿿]/g, '')))
    .map(e => e.innerText.slice(0, 60));
  return {wide, tables, missing, untranslated,
          run: run ? {device: run.dataset.device, profile: run.dataset.profile} : null,
          banner: banner ? banner.innerText.slice(0, 200) : null};
}"""
TABLE_NOISE = re.compile(r"\bNaN\b|\bNone\b|\d[eE]\+\d|rows ×")
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B50\u2B55\u23F3\u2705\u274C]")
TEXT_FALLBACK_JS = r"""() => [...document.querySelectorAll('.cell_output pre')]
  .filter(e => /^\s*(alt\.\w*Chart\(\.\.\.\)|<VegaLite \d+ object>)/.test(e.textContent)).length"""


def site_pages(root: Path = BOOK_HTML) -> list[Path]:
    """Every .html page of the site, static assets excluded."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.html")
                  if not NOT_PAGES.intersection(p.relative_to(root).parts))


class _AssetRefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        url = a.get("src") if tag == "script" else a.get("href") if tag == "link" else None
        if url:
            self.refs.append(f"<{tag}> {url}")


def remote_assets(html: str) -> list[str]:
    """`<script src>` / `<link href>` that point at http(s) (or protocol-relative) URLs."""
    parser = _AssetRefs()
    parser.feed(html)
    return [r for r in parser.refs if re.search(r"> (https?:)?//", r, re.I)]


@dataclass
class PageReport:
    page: str
    charts_in_source: int = 0
    charts_drawn: int = 0
    network: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    layout: dict[str, Any] = field(default_factory=dict)


def check_page(browser: Any, path: Path, screenshot_dir: Path | None = None) -> PageReport:
    """Load one page offline and report every way it failed to render its charts."""
    html = path.read_text(encoding="utf-8", errors="replace")
    source_ids = CHART_DIV.findall(html)
    rep = PageReport(str(path), charts_in_source=len(source_ids))
    context = browser.new_context(service_workers="block", viewport=VIEWPORT)

    def route(r: Any) -> None:
        if r.request.url.startswith(LOCAL_SCHEMES):
            r.continue_()
        else:
            rep.network.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda req: None if req.url.startswith(LOCAL_SCHEMES)
            or req.url in rep.network else rep.network.append(req.url))
    page.on("websocket", lambda ws: rep.network.append(ws.url))
    page.on("pageerror", lambda e: rep.problems.append(f"uncaught page error: {e}"))
    page.on("console", lambda m: rep.problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" and BAD_CONSOLE.search(m.text) else None)
    page.on("requestfailed", lambda req: rep.problems.append(f"missing local file: {req.url}")
            if req.url.startswith("file:") else None)
    try:
        page.goto(path.as_uri(), wait_until="load", timeout=30_000)
        if source_ids:
            try:
                page.wait_for_function(SETTLED_JS, timeout=CHART_TIMEOUT_MS, polling=100)
            except Exception:  # playwright TimeoutError: reported per chart below
                pass
        states = page.evaluate(CHART_STATE_JS)
        if screenshot_dir is not None:
            screenshot_dir.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot_dir / (path.stem + ".png")), full_page=True)
        fallbacks = page.evaluate(TEXT_FALLBACK_JS)
        rep.layout = page.evaluate(LAYOUT_JS)
    finally:
        context.close()

    rep.charts_drawn = sum(s["embedded"] and s["w"] > 0 and s["h"] > 0 and not s["error"]
                           for s in states)
    for s in states:
        if not (s["embedded"] and s["w"] > 0 and s["h"] > 0) or s["error"]:
            rep.problems.append(f"chart {s['id']} not drawn (vega-embed ran: {s['embedded']}, "
                                f"size {s['w']}x{s['h']}, error: {s['error']})")
    if rep.charts_drawn != rep.charts_in_source:
        rep.problems.append(f"{rep.charts_in_source} charts in the HTML source, "
                            f"{len(states)} in the DOM, {rep.charts_drawn} drawn")
    if fallbacks:
        rep.problems.append(f"{fallbacks} chart(s) shown as text, not drawn: "
                            "call pi05perf.charts.use_offline_renderer() in the chapter")
    if rep.network:
        rep.problems.append(f"network requests (all aborted): {sorted(set(rep.network))}")
    lay = rep.layout
    if lay.get("wide"):
        rep.problems.append(f"wider than the content column at {VIEWPORT['width']} px: {lay['wide']}")
    if noise := sorted(set(TABLE_NOISE.findall(lay.get("tables", "")))):
        rep.problems.append(f"raw values in tables: {noise}")
    if lay.get("missing"):
        rep.problems.append(f"characters without a glyph in the page's fonts: {lay['missing']}")
    if emoji := sorted(set(EMOJI.findall(html))):
        rep.problems.append(f"emoji (empty boxes without an emoji font): {emoji}")
    if lay.get("untranslated"):
        rep.problems.append(f"Chinese text without its English translation beside it: {lay['untranslated']}")
    return rep


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through playwright (None if it is missing: see _need)."""
    if not Path(CHROMIUM).exists():
        yield None
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


def _need(browser: Any) -> Any:
    """A missing browser FAILS the test (never skips it)."""
    if browser is None:
        pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium",
                    pytrace=False)
    return browser


SITES = {"published": BOOK_HTML, "smoke": SMOKE_HTML}
CASES = [(site, p) for site, root in SITES.items() for p in site_pages(root)]
CASES = CASES or [(site, None) for site in SITES]
CASE_IDS = [f"{site}:{p.relative_to(SITES[site]) if p else 'no-site'}" for site, p in CASES]


def _page_or_fail(site: str, page: Path | None) -> Path:
    if page is None:
        pytest.fail(f"no built {site} site at {SITES[site]} (build it first: `make test` builds both)",
                    pytrace=False)
    return page


from pi05perf.book import READERS  # noqa: E402 - pages that only read the committed results
from pi05perf.results import devices  # noqa: E402


def committed_gpus() -> set[str]:
    """Device names with committed executed notebooks (what a published page may present)."""
    from pi05perf.notebooks import committed_devices

    return {d["device"] for d in committed_devices()}


@pytest.mark.parametrize("site, page", CASES, ids=CASE_IDS)
def test_no_remote_assets(site: str, page: Path | None) -> None:
    html = _page_or_fail(site, page).read_text(encoding="utf-8", errors="replace")
    assert remote_assets(html) == [], "page loads scripts/styles from the network"


@pytest.mark.parametrize("site, page", CASES, ids=CASE_IDS)
def test_page_renders_offline(browser: Any, site: str, page: Path | None) -> None:
    path = _page_or_fail(site, page)
    html = path.read_text(encoding="utf-8", errors="replace")
    if m := META_REFRESH.search(html):  # jupyter-book's index.html redirect stub
        target = (path.parent / m.group(1).split("#")[0]).resolve()
        assert target.is_file(), f"redirect to missing page {m.group(1)}"
        return
    shots = os.environ.get("BROWSER_SCREENSHOTS")
    rep = check_page(_need(browser), path, Path(shots) / site if shots else None)
    if any("THEBE_JS_URL" in p for p in rep.problems):
        rep.problems.append("hint: drop sphinx_thebe from the extensions in _config.yml "
                            "(sphinx-thebe 0.3.1 + Sphinx 7.4 emit its config script twice)")
    if site == "published" and path.stem in READERS:
        # intro and verdict are read afresh at every build: they name the committed GPU results they read
        run, devs = rep.layout.get("run"), {d["device"] for d in devices()}
        if devs and (run is None or run["device"] not in devs):
            rep.problems.append(f"a reader page that names {run}, not a GPU with committed results {devs}")
    elif path.parent.name == "chapters" or path.name == "intro.html":
        run = rep.layout.get("run")
        if site == "published":
            gpus = committed_gpus()
            if not gpus:
                assert rep.layout.get("banner"), "no committed notebooks, yet the page has no banner saying so"
            elif run is None:
                rep.problems.append(f"no run named at the top (banner: {rep.layout.get('banner')})")
            elif run["profile"] != "full" or run["device"] not in gpus:
                rep.problems.append(f"presents {run}, not a full run of a GPU with committed results {gpus}")
        elif run is None and not rep.layout.get("banner"):
            rep.problems.append("smoke page says nothing about the run at its top")
    assert rep.problems == [], "\n".join(rep.problems)
    if site == "published" and path.parent.name == "chapters" and path.stem not in READERS and not committed_gpus():
        pytest.skip("no device has committed notebooks (data/notebooks/<device>/) yet: the published pages "
                    "show that banner; the check of the device at the top waits for a GPU run")


# ---- self-check: the checker passes an offline chart and fails a CDN-only one ----

# Minimal AMD loader, as require.js would present itself: modules defined by name win,
# anything else is fetched from the configured path (which would be the CDN).
AMD_STUB = """<script>(function () {
  var mods = {}, paths = {};
  window.define = function (name, deps, f) { mods[name] = f(); }; window.define.amd = {};
  window.requirejs = {config: function (c) { Object.assign(paths, c.paths || {}); }};
  window.require = function (deps, ok, bad) {
    if (deps.every(function (d) { return d in mods; })) return ok.apply(null, deps.map(function (d) { return mods[d]; }));
    var s = document.createElement('script'); s.src = paths[deps[0]];
    s.onerror = function () { bad(new Error('load failed ' + s.src)); }; document.head.appendChild(s);
  };
})();</script>"""


@pytest.fixture(scope="module")
def chart_snippet() -> str:
    import altair as alt
    import pandas as pd

    from pi05perf.charts import series_scale, use_offline_renderer

    use_offline_renderer()
    df = pd.DataFrame({"x": [1, 2, 3] * 3, "ms": [3, 2, 1, 4, 3, 2, 1, 1, 1],
                       "series": [s for s in ["Thor (quoted)", "this device (measured)", "floor"]
                                  for _ in range(3)]})
    chart = alt.Chart(df).mark_line().encode(x="x:Q", y="ms:Q",
                                             color=alt.Color("series:N", scale=series_scale()))
    return alt.renderers.get()(chart.to_dict())["text/html"]  # what a chapter cell emits


def _page(dir_: Path, name: str, head: str, body: str) -> Path:
    p = dir_ / name
    p.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head>"
                 f"<body><main>{body}</main></body></html>", encoding="utf-8")
    return p


def test_checker_self_check(browser: Any, tmp_path: Path, chart_snippet: str) -> None:
    from pi05perf.charts import write_vega_bundle

    _need(browser)
    bundle = write_vega_bundle(tmp_path / "_static")
    script = f'<script src="_static/{bundle.name}"></script>'
    good = check_page(browser, _page(tmp_path, "good.html", script, chart_snippet))
    assert good.problems == [] and good.charts_drawn == good.charts_in_source == 1, good

    amd = check_page(browser, _page(tmp_path, "amd.html", AMD_STUB + script, chart_snippet))
    assert amd.problems == [] and amd.charts_drawn == 1, amd

    cdn = check_page(browser, _page(tmp_path, "cdn.html", "", chart_snippet))
    assert cdn.charts_in_source == 1 and cdn.charts_drawn == 0, cdn
    assert any("cdn.jsdelivr.net" in u for u in cdn.network), cdn
    assert cdn.problems, "checker passed a page that needs the CDN"

    remote = '<script src="https://cdn.jsdelivr.net/npm/vega@6"></script>'
    assert remote_assets(remote + '<link rel="stylesheet" href="_static/x.css">') == [
        "<script> https://cdn.jsdelivr.net/npm/vega@6"]
