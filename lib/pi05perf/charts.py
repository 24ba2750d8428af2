"""Altair charts that render offline in the book, with one consistent look.

The book serves vega, vega-lite and vega-embed itself (`_static/vega-offline.js`,
loaded on every page through `html_js_files`), so a reader needs no network.

* `write_vega_bundle(static_dir)` writes that file (run at build time).
* `use_offline_renderer()` is called once at the top of every chapter: charts are
  emitted as `text/html` by altair's own HTML renderer (its "universal" template),
  data inline, theme "pi05perf".

Why no CDN request happens: altair's template loads a library only when
`VEGA_DEBUG["<lib>_version"]` differs from the version it was built for (keys
`vega_version`, `vegalite_version`, `vegaembed_version`: `lib.replace("-", "")`);
the bundle presets exactly those values and the globals `vega`, `vegaLite` and
`vegaEmbed` the template calls. If an AMD loader (require.js, which myst-nb adds
only to pages holding ipywidgets state) is already on the page, the template
takes its `require(["vega-embed"])` branch instead; the bundle then also defines
named AMD modules so that branch resolves locally too.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import altair as alt

BUNDLE_NAME = "vega-offline.js"
THEME_NAME = "pi05perf"

#: Fixed colours of the three series the chapters compare.
SERIES_COLORS: dict[str, str] = {
    "Thor (quoted)": "#4C78A8",  # blue
    "this device (measured)": "#F58518",  # orange
    "floor": "#6F6F6F",  # dark grey: a bound, not a measurement
}
#: Category palette: the series colours first, then the rest of Tableau 10.
PALETTE: list[str] = [*SERIES_COLORS.values(), "#E45756", "#72B7B2", "#54A24B",
                      "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D"]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def write_vega_bundle(static_dir: str | Path) -> Path:
    """Write `static_dir/vega-offline.js` and return its path.

    The file is vl-convert's bundle of vega, vega-lite (altair's major.minor) and
    vega-embed, wrapped in a strict-mode IIFE so that its top-level names stay
    private; it assigns only `window.vega`, `window.vegaLite`, `window.vegaEmbed`
    and `window.VEGA_DEBUG` (set last, so a bundle that failed to run leaves the
    charts visibly broken rather than silently fetched from a CDN).
    """
    import vl_convert as vlc

    vl = _major_minor(alt.VEGALITE_VERSION)
    if vl not in vlc.get_vegalite_versions():
        msg = f"vl-convert offers vega-lite {vlc.get_vegalite_versions()}, altair needs {vl}"
        raise RuntimeError(msg)
    for lib, have, want in (("vega", vlc.get_vega_version(), alt.VEGA_VERSION),
                            ("vega-embed", vlc.get_vega_embed_version(), alt.VEGAEMBED_VERSION)):
        if have.split(".")[0] != want.split(".")[0]:
            msg = f"vl-convert bundles {lib} {have}, altair expects {want}"
            raise RuntimeError(msg)

    debug = json.dumps({"vega_version": alt.VEGA_VERSION,
                        "vegalite_version": alt.VEGALITE_VERSION,
                        "vegaembed_version": alt.VEGAEMBED_VERSION})
    js = "\n".join([
        f"/* {BUNDLE_NAME}: written by pi05perf.charts.write_vega_bundle. vega "
        f"{vlc.get_vega_version()}, vega-lite {vl}, vega-embed {vlc.get_vega_embed_version()} "
        "(vl-convert bundle). Globals: vega, vegaLite, vegaEmbed, VEGA_DEBUG. */",
        "(function () {",
        '"use strict";',
        vlc.javascript_bundle(vl_version=vl),  # ends by assigning window.vega/vegaLite/vegaEmbed
        f"window.VEGA_DEBUG = Object.assign(window.VEGA_DEBUG || {{}}, {debug});",
        'if (typeof define === "function" && define.amd) {',
        '  define("vega", [], function () { return window.vega; });',
        '  define("vega-lite", [], function () { return window.vegaLite; });',
        '  define("vega-embed", [], function () { return window.vegaEmbed; });',
        "}",
        "})();",
        "",
    ])
    out = Path(static_dir) / BUNDLE_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(js, encoding="utf-8")
    return out


def series_scale(names: Iterable[str] | None = None) -> alt.Scale:
    """Colour scale pinning each series in `SERIES_COLORS` to its colour.

    Pass `names` (a subset, in legend order) when a chart shows only some series,
    so the legend lists only those.
    """
    domain = list(SERIES_COLORS) if names is None else list(names)
    return alt.Scale(domain=domain, range=[SERIES_COLORS[n] for n in domain])


def _theme() -> dict[str, Any]:
    label, title = 12, 13
    return {"config": {
        "font": FONT,
        "view": {"continuousWidth": 640, "continuousHeight": 320, "stroke": None},
        "title": {"fontSize": 16, "fontWeight": 600, "anchor": "start",
                  "subtitleFontSize": title, "subtitleColor": "#555"},
        "axis": {"labelFontSize": label, "titleFontSize": title, "titleFontWeight": 600,
                 "gridColor": "#e8e8e8", "domainColor": "#888", "tickColor": "#888"},
        "legend": {"labelFontSize": label, "titleFontSize": title, "orient": "bottom",
                   "labelLimit": 320},
        "header": {"labelFontSize": title, "titleFontSize": title},
        "range": {"category": PALETTE},
        "line": {"strokeWidth": 2},
        "point": {"size": 60, "filled": True},
    }}


def use_offline_renderer(max_rows: int | None = 20_000) -> None:
    """Configure altair for the book; call once at the top of a chapter.

    Charts become `text/html` from altair's HTML renderer (SVG, export menu only:
    no "open in editor" link), data stay inline in the page (no files written),
    at most `max_rows` rows per dataset (None: no limit), and theme "pi05perf".
    """
    alt.renderers.enable("html", embed_options={
        "renderer": "svg",
        "actions": {"export": True, "source": False, "compiled": False, "editor": False},
    })
    alt.data_transformers.enable("default", max_rows=max_rows)
    if hasattr(alt, "theme"):  # altair >= 5.5
        alt.theme.register(THEME_NAME, enable=True)(_theme)
    else:  # pragma: no cover - altair 5.4
        alt.themes.register(THEME_NAME, _theme)
        alt.themes.enable(THEME_NAME)


def place_labels(df: Any, x: str, y: str, text: str, *, x_log: bool = False, y_log: bool = False,
                 width: int = 640, height: int = 320, font_px: int = 11) -> Any:
    """Positions for point labels that do not overlap: returns `df` with `label_x`, `label_y`.

    Each label starts just right of its point; a label whose box would overlap one already
    placed moves down (or up) by whole lines until it is free. Positions are computed in pixels
    on the chart's scales (from the data extent, log where asked) and returned in data units,
    so the label layer uses the same x/y encodings as the points."""
    import numpy as np

    out = df.copy()
    xs, ys = out[x].astype(float).to_numpy(), out[y].astype(float).to_numpy()
    tx = (lambda v: np.log10(np.clip(v, 1e-300, None))) if x_log else (lambda v: v)
    ty = (lambda v: np.log10(np.clip(v, 1e-300, None))) if y_log else (lambda v: v)
    fx, fy = tx(xs), ty(ys)
    spanx = (np.nanmax(fx) - np.nanmin(fx)) or 1.0
    spany = (np.nanmax(fy) - np.nanmin(fy)) or 1.0
    px = (fx - np.nanmin(fx)) / spanx * width
    py = (np.nanmax(fy) - fy) / spany * height  # pixels down from the top
    line = font_px + 2
    boxes: list[tuple[float, float, float, float]] = []
    dy_px = np.zeros(len(out))
    for i in np.argsort(px):
        w = 0.6 * font_px * len(str(out[text].iloc[i])) + 8
        for k in range(0, 40):
            dy = line * ((k + 1) // 2) * (1 if k % 2 else -1)  # 0, +1, -1, +2, -2 lines
            box = (px[i] + 6, py[i] + dy - line / 2, px[i] + 6 + w, py[i] + dy + line / 2)
            if not any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in boxes):
                break
        boxes.append(box)
        dy_px[i] = dy
    label_f = fy - dy_px / height * spany  # back to data units (pixels grow downwards)
    out["label_x"] = xs
    out["label_y"] = 10 ** label_f if y_log else label_f
    return out


def point_labels(df: Any, x: str, y: str, text: str, *, x_scale: Any = alt.Undefined,
                 y_scale: Any = alt.Undefined, width: int = 640, height: int = 320, font_px: int = 11) -> alt.Chart:
    """A text layer labelling the points of (x, y) without overlaps (see `place_labels`);
    layer it over the points: `points + point_labels(df, "intensity", "tflops", "op", ...)`."""
    is_log = lambda s: getattr(s, "type", None) == "log"  # noqa: E731
    placed = place_labels(df, x, y, text, x_log=is_log(x_scale), y_log=is_log(y_scale), width=width,
                          height=height, font_px=font_px)
    return alt.Chart(placed[["label_x", "label_y", text]]).mark_text(align="left", dx=6, fontSize=font_px).encode(
        x=alt.X("label_x:Q", scale=x_scale), y=alt.Y("label_y:Q", scale=y_scale), text=f"{text}:N")
