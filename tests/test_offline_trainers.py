"""Offline loops on the tiny model: each method lowers its loss and moves probability the right way."""

import json

import pytest
import torch

from feedbackrl.config import from_dict
from feedbackrl.policy import Policy
from feedbackrl.train.offline import OfflineConfig, OffPolicyGradientObjective, OffPolicyOptions, train_offline
from feedbackrl.train.offline_data import TupleData

PROMPTS = ["search: phone ->", "search: 3+4=", "search: 12+5=", "search: phone 7 ->"]
GOOD, BAD = " SKU-A SKU-B", " SKU-C SKU-A"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def config(tmp_path, data, method, **over):
    raw = {"name": method, "out_dir": str(tmp_path / "runs"), "method": method, "data": [data],
           "model": {"path": over.pop("model_dir")}, "epochs": 6, "batch_size": 4,
           "optim": {"lr": 3e-3}, "progress": False}
    raw.update(over)
    return from_dict(OfflineConfig, raw, "test")


def logprobs(model_dir, prompts, completions):
    with torch.no_grad():
        return Policy.load(model_dir).eval().sequence_logprobs(prompts, completions).double()


def gap(model_dir):
    """mean over prompts of log pi(GOOD) - log pi(BAD)."""
    n = len(PROMPTS)
    lp = logprobs(model_dir, PROMPTS * 2, [GOOD] * n + [BAD] * n)
    return float((lp[:n] - lp[n:]).mean()), lp[:n], lp[n:]


@pytest.mark.parametrize("method", ["dpo", "ipo"])
def test_preference_methods_raise_chosen_over_rejected(tiny_model_dir, tmp_path, method):
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": p, "chosen": GOOD, "rejected": BAD} for p in PROMPTS * 2])
    cfg = config(tmp_path, data, method, model_dir=str(tiny_model_dir), dpo={"beta": 0.5})
    before, _, _ = gap(tiny_model_dir)
    summary = train_offline(cfg, log=lambda _: None)
    after, _, _ = gap(summary["checkpoint"])
    assert summary["rows"] == 8 and summary["steps"] == 12
    # the implicit reward margin (policy gap minus reference gap) starts at exactly 0 ...
    first = json.loads((cfg.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["reward_margin"] == pytest.approx(0.0, abs=1e-5)
    if method == "dpo":
        assert first["loss"] == pytest.approx(0.6931, abs=1e-3)  # -log sigmoid(0)
    else:
        assert first["loss"] == pytest.approx(1.0, abs=1e-3)  # (0 - 1/(2*0.5))^2
    # ... and training moves log pi(chosen) - log pi(rejected) up relative to the reference
    assert after - before > 1.0
    assert summary["final_epoch_loss"] < summary["first_loss"]


def test_awr_raises_high_reward_responses_more(tiny_model_dir, tmp_path):
    rows = [{"prompt": p, "response": r, "reward": x} for p in PROMPTS for r, x in ((GOOD, 3.0), (BAD, 0.0))]
    data = write_jsonl(tmp_path / "tuples.jsonl", rows)
    cfg = config(tmp_path, data, "awr", model_dir=str(tiny_model_dir), weighted={"temperature": 1.0})
    _, good0, bad0 = gap(tiny_model_dir)
    summary = train_offline(cfg, log=lambda _: None)
    _, good1, bad1 = gap(summary["checkpoint"])
    # both are imitated (AWR is weighted regression), the rewarded one far more
    assert float((good1 - good0).mean()) > float((bad1 - bad0).mean()) + 1.0
    assert summary["final_epoch_loss"] < summary["first_loss"]
    # per-prompt baseline: advantages are +-1.5, weights exp(+-1.5) normalised by their batch mean
    first = json.loads((cfg.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["max_weight"] == pytest.approx(2 * torch.tensor(1.5).exp().item() / (torch.tensor(1.5).exp() + torch.tensor(-1.5).exp()).item(), rel=1e-5)


def test_rwr_uses_the_reward_itself(tiny_model_dir, tmp_path):
    rows = [{"prompt": p, "response": r, "reward": x} for p in PROMPTS for r, x in ((GOOD, 2.0), (BAD, 0.0))]
    data = write_jsonl(tmp_path / "tuples.jsonl", rows)
    cfg = config(tmp_path, data, "rwr", model_dir=str(tiny_model_dir), epochs=1, batch_size=8,
                 weighted={"normalise": "none", "temperature": 2.0})
    train_offline(cfg, log=lambda _: None)
    first = json.loads((cfg.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["max_weight"] == pytest.approx(torch.tensor(1.0).exp().item(), rel=1e-6)  # exp(2 / 2)
    assert first["mean_advantage"] == pytest.approx(1.0)  # rewards, not centred


def test_opg_weights_are_one_when_logged_propensity_is_the_policys_own(tiny_model_dir):
    policy = Policy.load(tiny_model_dir).eval()
    responses = [GOOD, BAD] * 2
    own = logprobs(tiny_model_dir, PROMPTS, responses)
    data = TupleData(PROMPTS, responses, torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64), own)
    objective = OffPolicyGradientObjective(data, OffPolicyOptions(clip_max=10.0, baseline="none"))
    loss, stats = objective(policy, [0, 1, 2, 3])
    assert stats["mean_weight"] == pytest.approx(1.0, abs=1e-5)
    assert stats["clipped_fraction"] == 0.0 and stats["ess"] == pytest.approx(4.0, abs=1e-4)
    # with w = 1 and no baseline the loss is plain REINFORCE: -mean(r log pi)
    assert float(loss) == pytest.approx(float(-(data.rewards * own).mean()), abs=1e-4)


def test_opg_weights_clip_and_training_raises_rewarded_response(tiny_model_dir, tmp_path):
    own = logprobs(tiny_model_dir, PROMPTS * 2, [GOOD] * 4 + [BAD] * 4)
    # the logger gave the good lists a tenth of the policy's probability: weights 10 -> clipped at 5
    rows = [{"prompt": p, "response": GOOD, "reward": 1.0, "logged_logprob": float(own[i]) - 2.302585}
            for i, p in enumerate(PROMPTS)]
    rows += [{"prompt": p, "response": BAD, "reward": 0.0, "logged_logprob": float(own[4 + i])}
             for i, p in enumerate(PROMPTS)]
    data = write_jsonl(tmp_path / "tuples.jsonl", rows)
    cfg = config(tmp_path, data, "opg", model_dir=str(tiny_model_dir), epochs=4, batch_size=8,
                 opg={"clip_max": 5.0, "baseline": "prompt_mean"})
    summary = train_offline(cfg, log=lambda _: None)
    first = json.loads((cfg.run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert first["clipped_fraction"] == pytest.approx(0.5)
    assert first["mean_weight"] == pytest.approx(3.0, abs=1e-3)  # (5 + 1) / 2
    _, good1, bad1 = gap(summary["checkpoint"])
    assert float((good1 - own[:4]).mean()) > 0.5 and float((bad1 - own[4:]).mean()) < 0.0


def test_warm_start_and_summary_files(tiny_model_dir, tmp_path):
    rows = [{"prompt": p, "response": r, "reward": x} for p in PROMPTS for r, x in ((GOOD, 1.0), (BAD, 0.0))]
    data = write_jsonl(tmp_path / "tuples.jsonl", rows)
    cfg = config(tmp_path, data, "awr", model_dir=str(tiny_model_dir), epochs=1,
                 warm_start={"steps": 5, "batch_size": 4, "lr": 1e-2, "warmup_steps": 0})
    summary = train_offline(cfg, log=lambda _: None)
    on_disk = json.loads((cfg.run_dir / "summary.json").read_text())
    assert on_disk["method"] == "awr" and on_disk["rows"] == 8 and on_disk["steps"] == 2
    assert {"final_loss", "wall_seconds", "checkpoint", "warm_start_loss"} <= set(on_disk)
    assert "eval" not in on_disk  # no task, nothing to evaluate
    assert len((cfg.run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    Policy.load(summary["checkpoint"])  # the checkpoint loads like any model


def test_awr_item_credit_prefers_the_clicked_second_item(tiny_model_dir, tmp_path):
    """After 'SKU-A', 'SKU-B' was clicked in one list and 'SKU-C' not in the other, while the
    lists' totals are equal (the second list's click is on its first item). Whole-list credit
    cannot tell them apart; per-item credit raises B over C after A."""
    after_a = [" SKU-A SKU-B", " SKU-A SKU-C"]
    rows = [{"prompt": p, "response": r, "reward": 1.0, "item_rewards": items}
            for p in PROMPTS for r, items in ((after_a[0], [0.0, 1.0]), (after_a[1], [1.0, 0.0]))]
    data = write_jsonl(tmp_path / "tuples.jsonl", rows)

    def b_over_c(model_dir):
        lp = logprobs(model_dir, PROMPTS * 2, [after_a[0]] * len(PROMPTS) + [after_a[1]] * len(PROMPTS))
        return float((lp[:len(PROMPTS)] - lp[len(PROMPTS):]).mean())

    before = b_over_c(tiny_model_dir)
    moved = {}
    for credit in ("sequence", "item"):
        cfg = config(tmp_path, data, "awr", model_dir=str(tiny_model_dir), name=f"awr-{credit}",
                     weighted={"temperature": 0.25, "credit": credit})
        summary = train_offline(cfg, log=lambda _: None)
        moved[credit] = b_over_c(summary["checkpoint"]) - before
    assert abs(moved["sequence"]) < 0.5 < moved["item"] - 1.0, moved

    no_items = write_jsonl(tmp_path / "plain.jsonl", [{k: v for k, v in r.items() if k != "item_rewards"} for r in rows])
    with pytest.raises(Exception, match="item_rewards"):
        train_offline(config(tmp_path, no_items, "awr", model_dir=str(tiny_model_dir), weighted={"credit": "item"}),
                      log=lambda _: None)
