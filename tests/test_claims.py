"""pi05perf.claims: the intro's list of key figures no committed run holds."""
import pandas as pd

from pi05perf import claims


def test_a_figure_is_unmeasured_only_where_no_device_holds_it():
    heads = pd.DataFrame([{"chapter": "ch02_roofline", "device": "B", "slug": "b", "source": "committed",
                           "profile": "full", "key": "copy_gbps", "value": 3000.0}])
    devices = [{"slug": "a"}, {"slug": "b"}]
    missing = claims.unmeasured_figures(devices, claims.Figures(heads))
    assert len(missing) == len(claims.HEADLINE_FIGURES) - 1
    assert not any(m.startswith("copy bandwidth") for m in missing)  # device b has it, device a does not
    assert any(m.startswith("dense bf16 matmul rate") and "chapter 2" in m for m in missing)
    assert len(claims.unmeasured_figures([{"slug": "a"}], claims.Figures(heads))) == len(claims.HEADLINE_FIGURES)
