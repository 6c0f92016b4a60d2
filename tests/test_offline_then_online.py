"""The offline-then-online recipe on a tiny budget: every stage's output, the curve's
interaction count, replay in the online metrics, and the config's one-line errors."""

import json

import pytest

from feedbackrl.config import ConfigError, load_config
from feedbackrl.report import read_metrics
from feedbackrl.train.offline_then_online import OfflineThenOnlineConfig, run_offline_then_online

CONFIG = "configs/shop_offline_then_online.yaml"
TINY = [
    "logs.sessions=200", "logs.noisy_copies=1",
    "offline.warm_start.steps=5", "offline.epochs=1", "offline.batch_size=64",
    "online.steps=2", "online.eval_every=1", "online.batch_size=16", "online.algo.minibatch_size=16",
    "online.shop.reward.shoppers_per_sample=2", "online.progress=false",
    "online.model.tiny.hidden_size=32", "online.model.tiny.num_layers=1", "online.model.tiny.num_heads=2",
    "online.model.tiny.intermediate_size=64",
]


def test_stages_curve_report_and_replay(tmp_path):
    cfg = load_config(CONFIG, OfflineThenOnlineConfig,
                      [f"out_dir={tmp_path}", "name=t", "online.replay.fraction=0.5"] + TINY)
    result = run_offline_then_online(cfg, log=lambda _: None)
    run = tmp_path / "t"
    for path in ("logs/tuples.parquet", "logs/tuples_noisy.parquet", "offline/policy/config.json",
                 "online/summary.json", "curve.json", "summary.json"):
        assert (run / path).exists(), path
    curve = result["curve"]
    assert curve["steps"] == [0, 1, 2]
    assert curve["interactions"] == [0, 16 * 2, 2 * 16 * 2]  # lists per step x shoppers per list
    assert result["reference_ctr"]["bm25"] > 0 and result["logs"]["noisy_tuples"] == 200
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 1 and "held-out CTR after offline training" in html
    rows = read_metrics(run / "online")
    assert [r["replay/rows"] for r in rows] == [8.0, 8.0]  # round(0.5 x 16)
    assert json.loads((run / "offline" / "summary.json").read_text())["rows"] == 400  # logs + 1 noisy copy


def test_keys_the_recipe_sets_are_refused():
    with pytest.raises(ConfigError, match="offline: data: set by the recipe"):
        load_config(CONFIG, OfflineThenOnlineConfig, ["offline.data=[x.parquet]"])
    with pytest.raises(ConfigError, match="online: algo.bogus: unknown key"):
        load_config(CONFIG, OfflineThenOnlineConfig, ["online.algo.bogus=1"])
    with pytest.raises(ConfigError, match="online.task"):
        load_config(CONFIG, OfflineThenOnlineConfig, ["online.task=arithmetic"])


def test_compare_charts_both_arms_in_the_run_report(tmp_path, capsys):
    """`train-offline-online --compare`: online only from the run's behaviour-cloned policy on
    the same budget; comparison.json and report.html hold both learning curves."""
    import sys

    from feedbackrl.cli import app
    from feedbackrl.commands.errors import run_cli

    argv, sys.argv = sys.argv, ["feedbackrl", "train-offline-online", CONFIG, "--compare",
                                "--set", f"out_dir={tmp_path}", "--set", "name=c"] + [
        a for kv in TINY for a in ("--set", kv)]
    try:
        code = run_cli(app)
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert code == 0, out
    run = tmp_path / "c"
    assert (run / "offline" / "warm_start" / "config.json").exists()
    cmp = json.loads((run / "comparison.json").read_text())
    only = cmp["curves"]["online only (from the logger's imitation)"]
    oto = cmp["curves"]["offline then online"]
    assert only["interactions"] == oto["interactions"] == [0, 32, 64]
    assert cmp["target_ctr"] == only["ctr"][-1]
    n = cmp["interactions_to_target"]["offline then online"]
    assert cmp["offline_then_online_fraction_of_online_only"] == (None if n is None else n / 64)
    html = (run / "report.html").read_text()
    assert "online only" in html and "offline then online" in html
    assert "reaches it after" in out
