"""The committed vega bundle (`_static/vega-offline.js`) is the one altair's HTML expects."""
import re
from pathlib import Path

import altair as alt

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "_static" / "vega-offline.js"


def _header() -> str:
    with BUNDLE.open(encoding="utf-8") as f:
        return f.readline()


def test_committed_bundle_serves_altairs_vega_lite():
    m = re.search(r"vega-lite (\d+\.\d+)", _header())
    assert m, "the bundle's first line names its vega-lite version (run `make vega-bundle`)"
    assert m.group(1) == ".".join(alt.VEGALITE_VERSION.split(".")[:2]), \
        f"bundle has vega-lite {m.group(1)}, altair {alt.VEGALITE_VERSION}: run `make vega-bundle`"


def test_committed_bundle_serves_altairs_vega_and_embed_majors():
    head = _header()
    for lib, want in (("vega", alt.VEGA_VERSION), ("vega-embed", alt.VEGAEMBED_VERSION)):
        m = re.search(rf"{lib} (\d+)\.", head)
        assert m and m.group(1) == want.split(".")[0], f"{lib}: bundle line {head!r}, altair wants {want}"


def test_bundle_assigns_the_globals_the_pages_use():
    text = BUNDLE.read_text(encoding="utf-8")
    for name in ("window.VEGA_DEBUG", "vegaEmbed"):
        assert name in text
