"""End to end: the shop demo's committed config (`make demo`'s run), judged on its summary.

The issue's targets are measured by the demo itself (docs/shop.md, "Where the targets stand":
2.05x BM25, 91.4% of the oracle, the Fold6 in the top 3 of both its intents within a day, the
gaming check in the whole order). This guards them with room for another CPU's float-level
differences (seeded runs are deterministic per CPU, not across CPUs): over seeds 0-2 the config
gave 2.00-2.05x BM25 and 89.3-91.6% of the oracle, so a run below 1.5x or 80% has regressed.
The Fold6 reached the premium-phone top 3 after 0-3 days and the foldable top 3 on launch day
in every run; the gaming order held in every run of this config.
"""

import pytest


@pytest.mark.slow
def test_the_committed_shop_demo_meets_its_targets(tmp_path):
    from feedbackrl.config import load_config
    from feedbackrl.train.config import RunConfig
    from feedbackrl.train.shop_demo import run_shop_demo

    cfg = load_config("configs/shop_grpo.yaml", RunConfig, [f"out_dir={tmp_path}", "progress=false"])
    s = run_shop_demo(cfg, log=lambda *_: None)
    assert s["ctr_vs_bm25"] >= 1.5, s["ctr_vs_bm25"]
    assert s["ctr_vs_oracle"] >= 0.80, s["ctr_vs_oracle"]
    launch = s["launch_days_to_top3"]["policy"]["3"]
    assert launch["foldable_phone"] == 0, launch
    assert launch["premium_phone"] is not None, launch  # by day 6: within 3 days of the day-3 launch
    assert s["fold6_days_to_top3"] is not None and s["fold6_days_to_top3"] <= 3
    assert s["gaming_s23_above_a54"] is True
    assert s["gaming_s23_above_a54_oracle"] is True
