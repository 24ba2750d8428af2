"""Our pi0.5 against lerobot's, parameter by parameter (the committed table; no lerobot needed).

`data/reference/lerobot_pi05_params.csv` was written from lerobot 0.6.1's `PI05Pytorch` by
`python -m pi05perf.peers write` (see `lerobot_pi05_params.md`). Every difference between the
two models must be named in `lerobot_pi05.ALLOWED_DIFFERENCES` with its reason.
"""
import pytest

from pi05perf import flops, lerobot_pi05, peers
from pi05perf.config import TokenBudget


@pytest.fixture(scope="module")
def tables():
    return lerobot_pi05.ours_param_table(), lerobot_pi05.load_lerobot_params()


def test_every_lerobot_tensor_has_a_known_component(tables):
    _, theirs = tables
    assert set(theirs.component) <= set(lerobot_pi05.COMPONENTS + lerobot_pi05.UNUSED)
    assert set(lerobot_pi05.COMPONENTS) <= set(theirs.component)  # every compared component is populated
    # the component in the file is the one the classifier gives the name today
    assert all(lerobot_pi05.lerobot_component(n) == c for n, c in zip(theirs.name, theirs.component))


def test_every_difference_is_allowed_with_a_reason(tables):
    cmp = lerobot_pi05.compare_components(*tables)
    bad = cmp[~cmp.allowed]
    assert bad.empty, f"differences not in ALLOWED_DIFFERENCES:\n{bad.to_string()}"
    for key in lerobot_pi05.ALLOWED_DIFFERENCES:  # an allow-list entry that no longer applies must go
        row = cmp[cmp.component == key[0]].iloc[0]
        differs = row.ours_count != row.lerobot_count if key[1] == "count" else not row.shapes_equal
        assert differs, f"stale allow-list entry {key}: the models agree there now"


def test_mismatch_pct_is_the_largest_component_difference(tables):
    ours, theirs = tables
    cmp = lerobot_pi05.compare_components(ours, theirs)
    got = lerobot_pi05.mismatch_pct(cmp)
    assert got == pytest.approx(max(cmp[cmp.component.isin(lerobot_pi05.COMPONENTS)].diff_pct))
    assert 0.0 <= got <= 100.0


def test_a_planted_difference_is_caught(tables):
    ours, theirs = tables
    # drop one of our expert's tensors: the comparison must flag it, with a non-zero mismatch
    victim = ours[ours.component == "action_expert"].index[0]
    cmp = lerobot_pi05.compare_components(ours.drop(index=victim), theirs)
    row = cmp[cmp.component == "action_expert"].iloc[0]
    assert not row.allowed and row.diff_pct > 0 and lerobot_pi05.mismatch_pct(cmp) > 0


def test_kv_cache_rows_match_the_formula():
    stages = lerobot_pi05.load_lerobot_stages()
    kv = stages[stages.kind == "kv_cache_bytes"]
    assert len(kv) == 2
    for r in kv.itertuples():
        tokens = int(r.shape.split("=")[1])
        assert int(r.value) == peers.kv_cache_bytes(tokens)


@pytest.mark.parametrize("config, views, horizon", [("headline", 2, 10), ("lerobot_default", 3, 50)])
def test_lerobot_flops_agree_with_the_analytic_count(config, views, horizon):
    stages = lerobot_pi05.load_lerobot_stages()
    fl = stages[(stages.config == config) & (stages.kind == "flops")].set_index("name").value.astype(float)
    ours = flops.pipeline_cost(TokenBudget(num_images=views, action_horizon=horizon), 10).set_index("stage").flops
    for stage, key in (("vision", "vision"), ("prefill", "prefix"), ("denoise", "denoise")):
        # lerobot computes RoPE angles with a small matmul; nothing else may differ
        assert fl[stage] == pytest.approx(float(ours[key]), rel=1e-6), stage
    assert fl["whole"] == pytest.approx(fl["vision"] + fl["prefill"] + fl["denoise"], rel=1e-9)
