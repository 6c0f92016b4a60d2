"""benchmarks/shop_launch.py: per-day launch ranks, days to top 3 and the first-pick trace, on a
shrunk shop run through the Fold6 launch (day 3 = step 4 at one step a day)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

BENCH = Path(__file__).parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import shop_launch  # noqa: E402

SHRUNK = ["model.tiny.hidden_size=32", "model.tiny.num_layers=1", "model.tiny.num_heads=2",
          "model.tiny.intermediate_size=64", "model.tiny.vocab_size=600", "sft.steps=3", "sft.examples=16",
          "sft.warmup_steps=1", "steps=5", "batch_size=16", "algo.minibatch_size=16", "shop.steps_per_day=1",
          "shop.eval_shoppers=4", "shop.prompt_candidates=0", "shop.similar_query="]


def test_launch_ranks_reads_the_best_launched_item_per_intent_and_day():
    from feedbackrl.tasks.shop.task import ShopTask

    world = ShopTask().world
    evals = [SimpleNamespace(step=0, day=3, lists=[("premium_phone", "q", ["SM-F956-256"])]),  # before training
             SimpleNamespace(step=30, day=2, lists=[("premium_phone", "q", ["SM-S928-256"])]),  # before launch
             SimpleNamespace(step=40, day=3, lists=[("premium_phone", "q", ["SM-S928-256", "SM-F956-512", "SM-F956-256"]),
                                                    ("foldable_phone", "q", ["SM-F946-256"]),
                                                    ("budget_phone", "q", ["SM-F956-256"])])]
    intents = shop_launch.launch_days(evals, world)
    assert intents == {"foldable_phone": None, "premium_phone": 0}  # premium: the 512 GB at rank 2 on day 3
    ranks = shop_launch.launch_ranks(evals, world, intents)
    assert ranks == {"foldable_phone": {3: None}, "premium_phone": {3: 2}}


def test_a_shrunk_run_reports_ranks_and_a_first_pick_trace(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    code = shop_launch.main(["--seed", "0", "--tag", "t", "--trace", "premium_phone", "--out", str(out),
                             *[a for s in SHRUNK for a in ("--set", s)]])
    assert code == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert row["tag"] == "t" and row["launch_day"] == 3
    assert set(row["ranks"]) == {"foldable_phone", "premium_phone"}
    assert set(row["ranks"]["premium_phone"]) == {"3", "4"}  # days 3 and 4 (steps 4 and 5)
    for intent, days in row["days_to_top3"].items():  # the demo's reading agrees with the ranks
        ranks = row["ranks"][intent]
        first = next((int(d) - 3 for d in sorted(ranks, key=int) if ranks[d] is not None and ranks[d] <= 3), None)
        assert days == first
    trace = row["trace"]
    assert [t["step"] for t in trace] == [1, 2, 3, 4, 5]
    # the launched SKUs appear in the first-pick probabilities from their launch day on
    assert "SM-F956-256" not in trace[2]["first_pick"] and "SM-F956-256" in trace[3]["first_pick"]
    for t in trace:
        assert 0 < sum(t["first_pick"].values()) <= 1.0001 and 0 <= t["led_by_launch"] <= t["rollouts"]
    assert "trace" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_a_bad_override_is_one_line_not_a_traceback(capsys):
    assert shop_launch.main(["--set", "algo.group_size=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "group_size" in err
