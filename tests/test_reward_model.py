"""Bradley-Terry reward model: pooling, save/load, the scorer, the recipe and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from feedbackrl.config import ConfigError, load_config
from feedbackrl.rewards.base import RewardFn
from feedbackrl.rewards.learned import LearnedReward, ScalarRewardModel, default_pooling, load_backbone, pool_hidden_states
from feedbackrl.sample import Sample
from feedbackrl.train.reward_model import RewardModelConfig, train_reward_model

CORPUS = ["Question: is this good?\nAnswer: yes", "Question: is that bad?\nAnswer: no"] * 20


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    from feedbackrl.policy.tiny import TinyModelConfig, build_tiny_model

    config = TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), CORPUS, config=config)


def test_pooling_by_hand_with_left_and_right_padding():
    hidden = torch.tensor([[[1.0, 0.0], [2.0, 2.0], [3.0, 6.0]], [[5.0, 5.0], [7.0, 1.0], [9.0, 9.0]]])  # [B=2, T=3, H=2]
    right = torch.tensor([[1, 1, 0], [1, 1, 1]])
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert pool_hidden_states(hidden, right, "last").tolist() == [[2.0, 2.0], [9.0, 9.0]]
    assert pool_hidden_states(hidden, left, "last").tolist() == [[3.0, 6.0], [9.0, 9.0]]
    assert pool_hidden_states(hidden, right, "mean").tolist() == [[1.5, 1.0], [7.0, 5.0]]
    assert pool_hidden_states(hidden, left, "mean").tolist() == [[2.5, 4.0], [7.0, 5.0]]
    assert pool_hidden_states(hidden, right, "cls").tolist() == [[1.0, 0.0], [5.0, 5.0]]


def test_default_pooling_reads_the_architecture(tiny_backbone):
    from transformers import BertConfig

    _, _, llama_config = load_backbone(tiny_backbone)
    assert default_pooling(llama_config) == "last"
    assert default_pooling(BertConfig(architectures=["BertModel"])) == "mean"


def test_zero_head_starts_at_log_two_and_padding_does_not_change_a_score(tiny_backbone):
    from feedbackrl.algos.preference import bradley_terry_loss

    backbone, tokenizer, _ = load_backbone(tiny_backbone)
    model = ScalarRewardModel(backbone, tokenizer, "last").eval()
    with torch.no_grad():
        scores = model.score_texts(["yes", "no"])
        assert scores.tolist() == [0.0, 0.0]
        assert math.isclose(float(bradley_terry_loss(scores[:1], scores[1:])), math.log(2), rel_tol=1e-6)
        torch.nn.init.normal_(model.head.weight)
        alone = model.score_texts(["Answer: yes"])
        padded = model.score_texts(["Answer: yes", "Question: is this good?\nAnswer: yes"])
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_saved_model_scores_the_same_through_learned_reward(tiny_backbone, tmp_path):
    backbone, tokenizer, _ = load_backbone(tiny_backbone)
    model = ScalarRewardModel(backbone, tokenizer, "last", max_length=64).eval()
    torch.manual_seed(0)
    torch.nn.init.normal_(model.head.weight)
    torch.nn.init.constant_(model.head.bias, 0.25)
    texts = [("Question: is this good?\nAnswer:", " yes"), ("Question: is that bad?\nAnswer:", " no")]
    with torch.no_grad():
        expected = model.score_texts([p + c for p, c in texts]).tolist()
    model.save(tmp_path / "run" / "model", {"backbone": "tiny"})

    reward = LearnedReward(tmp_path / "run")  # a run directory resolves to its model/
    assert isinstance(reward, RewardFn) and reward.name == "learned"
    results = reward([Sample(prompt=p, completion=c) for p, c in texts])
    assert [r.score for r in results] == pytest.approx(expected, abs=1e-5)
    assert results[0].details == {"raw_score": results[0].score, "model": str(tmp_path / "run" / "model")}
    assert json.loads((tmp_path / "run" / "model" / "reward_model.json").read_text())["pooling"] == "last"


def test_learned_reward_on_a_missing_dir_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a reward model directory"):
        LearnedReward(tmp_path)


def _write_pairs(path, n=48):
    """A preference any model can learn: 'yes' beats 'no' whatever the prompt."""
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"prompt": f"Question {i}: is it fine?\nAnswer:", "chosen": " yes", "rejected": " no"}) + "\n")
    return path


@pytest.mark.parametrize("finetune", ["full", "frozen", "lora"])
def test_recipe_learns_an_easy_preference_and_writes_its_outputs(tiny_backbone, tmp_path, finetune):
    data = _write_pairs(tmp_path / "pairs.jsonl")
    config = load_config(
        None,
        RewardModelConfig,
        [f"backbone={tiny_backbone}", f"data={data}", f"out_dir={tmp_path / 'runs'}", "name=easy",
         f"finetune={finetune}", "epochs=3", "batch_size=8", "head_lr=0.05", "lr=0.01", "eval_fraction=0.25"],
    )
    summary = train_reward_model(config)
    assert summary["held_out_accuracy"] == 1.0 and summary["train_accuracy"] == 1.0
    assert (summary["train_pairs"], summary["held_out_pairs"], summary["steps"]) == (36, 12, 15)
    assert summary["loss"] < math.log(2)
    on_disk = json.loads((tmp_path / "runs" / "easy" / "summary.json").read_text())
    for key in ("held_out_accuracy", "train_accuracy", "loss", "steps", "wall_seconds", "train_pairs", "held_out_pairs"):
        assert on_disk[key] == summary[key]
    assert len(on_disk["held_out_accuracy_by_epoch"]) == 3 and on_disk["held_out_accuracy_by_epoch"][-1] == 1.0
    from feedbackrl.rewards.base import RewardResult
    from feedbackrl.rewards.registry import get_reward

    reward = get_reward("learned", path=tmp_path / "runs" / "easy")
    assert isinstance(reward, LearnedReward) and isinstance(reward, RewardFn)
    yes, no = reward([Sample(prompt="Question 99: is it fine?\nAnswer:", completion=c) for c in (" yes", " no")])
    assert isinstance(yes, RewardResult) and yes.ok
    assert yes.score > no.score
    assert yes.details == {"raw_score": yes.score, "model": str(tmp_path / "runs" / "easy" / "model")}


def test_margin_column_is_passed_to_the_loss(tiny_backbone, tmp_path):
    """A frozen backbone with a margin of 2 must push the score gap past 2 to lower the loss."""
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for i in range(32):
            f.write(json.dumps({"prompt": f"Q{i}:", "chosen": " yes", "rejected": " no", "margin": 2.0}) + "\n")
    overrides = [f"backbone={tiny_backbone}", f"data={path}", f"out_dir={tmp_path}", "finetune=frozen",
                 "epochs=1", "batch_size=32", "eval_fraction=0.25", "head_lr=0.001"]
    with_margin = train_reward_model(load_config(None, RewardModelConfig, overrides + ["name=m"]))
    without = train_reward_model(load_config(None, RewardModelConfig, overrides + ["name=n", "use_margin=false"]))
    # One step from a zero head: the loss is -log sigmoid(0 - margin) with, log 2 without.
    assert with_margin["loss"] == pytest.approx(-math.log(1 / (1 + math.exp(2.0))), rel=1e-5)
    assert without["loss"] == pytest.approx(math.log(2), rel=1e-5)


def _head(summary) -> dict:
    from safetensors.torch import load_file

    return load_file(f"{summary['model_dir']}/head.safetensors")


def test_centering_is_passed_to_the_loss(tiny_backbone, tmp_path):
    """Bradley-Terry sees only r_chosen - r_rejected, so the head's bias gets no gradient and
    stays at 0; centering (coef * mean((r_c + r_r)^2)) is the only term that moves it."""
    path = _write_pairs(tmp_path / "pairs.jsonl", n=32)
    overrides = [f"backbone={tiny_backbone}", f"data={path}", f"out_dir={tmp_path}", "finetune=frozen",
                 "epochs=4", "batch_size=8", "eval_fraction=0.25", "head_lr=0.05"]
    plain = train_reward_model(load_config(None, RewardModelConfig, overrides + ["name=plain"]))
    centered = train_reward_model(load_config(None, RewardModelConfig, overrides + ["name=centered", "center_coef=1.0"]))
    assert abs(float(_head(plain)["bias"])) < 0.1 * abs(float(_head(centered)["bias"]))

    def offset(summary) -> float:  # r(yes) + r(no) on a training prompt
        scores = LearnedReward(summary["model_dir"])([Sample(prompt="Question 0: is it fine?\nAnswer:", completion=c) for c in (" yes", " no")])
        return scores[0].score + scores[1].score

    assert abs(offset(centered)) < 0.5 * abs(offset(plain))


def test_recipe_reads_parquet_and_a_separate_held_out_file(tiny_backbone, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": f"Question {i}: is it fine?\nAnswer:", "chosen": " yes", "rejected": " no"} for i in range(24)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    held_out = _write_pairs(tmp_path / "held_out.jsonl", n=8)
    config = load_config(
        None,
        RewardModelConfig,
        [f"backbone={tiny_backbone}", f"data={tmp_path / 'train.parquet'}", f"eval_data={held_out}",
         f"out_dir={tmp_path}", "name=pq", "epochs=2", "batch_size=8", "head_lr=0.05", "lr=0.01"],
    )
    summary = train_reward_model(config)
    assert (summary["train_pairs"], summary["held_out_pairs"], summary["steps"]) == (24, 8, 6)
    assert summary["held_out_accuracy"] == 1.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("eval_fraction=1.5", "eval_fraction: must be in [0, 1)"),
        ("finetune=half", "finetune: must be one of"),
        ("batch_size=0", "batch_size: must be >= 1"),
        ("name=a/b", "name: must be a non-empty directory name"),
        ("lm_coef=-0.5", "lm_coef: must be >= 0"),
        ("lm_completion_coef=-1", "lm_completion_coef: must be >= 0"),
        ("generated_arithmetic_fraction=1.5", "generated_arithmetic_fraction: must be in [0, 1]"),
        ("generated_max_operand=0", "generated_max_operand: must be >= 1"),
    ],
)
def test_bad_config_values_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        load_config(None, RewardModelConfig, [override])


def test_cli_turns_a_bad_data_file_into_a_user_error(tmp_path):
    import typer
    from typer.testing import CliRunner

    from feedbackrl.commands.errors import UserError
    from feedbackrl.commands.reward_model import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # two commands, so `train-rm` stays a subcommand
    (tmp_path / "rm.yaml").write_text(f"data: {tmp_path / 'missing.jsonl'}\nout_dir: {tmp_path}\n")
    result = CliRunner().invoke(app, ["train-rm", str(tmp_path / "rm.yaml")])
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == f"{tmp_path / 'missing.jsonl'}: no such preference file"


def test_next_token_loss_by_hand():
    """Vocabulary of 2, embeddings e0 = (1, 0), e1 = (0, 1): a hidden state h gives logits (h0, h1)."""
    from types import SimpleNamespace

    from feedbackrl.train.reward_model import next_token_loss

    embeddings = torch.nn.Embedding(2, 2)
    embeddings.weight.data = torch.eye(2)
    backbone = SimpleNamespace(get_input_embeddings=lambda: embeddings)
    hidden = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [9.0, 9.0]]])  # [B=1, T=3, H=2]
    input_ids = torch.tensor([[1, 0, 1]])
    # Targets t=1 (token 0, predicted from h0: p = e^2 / (e^2 + 1)) and t=2 (token 1, from h1: p = 1/2).
    loss = next_token_loss(backbone, hidden, input_ids, torch.tensor([[1, 1, 1]]))
    assert float(loss) == pytest.approx((math.log(1 + math.exp(-2.0)) + math.log(2)) / 2, rel=1e-6)
    # Left padding at t=0: the first real token (t=1) has nothing real before it to predict it.
    left_padded = next_token_loss(backbone, hidden, input_ids, torch.tensor([[0, 1, 1]]))
    assert float(left_padded) == pytest.approx(math.log(2), rel=1e-6)


def test_completion_mask_and_masked_next_token_loss():
    """last_tokens_mask marks each row's last k real tokens whatever the padding side, and a
    target mask keeps only the targets it marks."""
    from types import SimpleNamespace

    from feedbackrl.train.reward_model import last_tokens_mask, next_token_loss

    mask = last_tokens_mask(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]]), [2, 1])
    assert mask.tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 0, 0]]

    embeddings = torch.nn.Embedding(2, 2)
    embeddings.weight.data = torch.eye(2)
    backbone = SimpleNamespace(get_input_embeddings=lambda: embeddings)
    hidden = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [9.0, 9.0]]])
    input_ids = torch.tensor([[1, 0, 1]])
    # only the last token is a target: predicted from h1 = (0, 0), p = 1/2
    loss = next_token_loss(backbone, hidden, input_ids, torch.tensor([[1, 1, 1]]), torch.tensor([[0, 0, 1]]))
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6)


def test_completion_token_counts_match_the_tiny_tokenizer(tiny_backbone):
    from transformers import AutoTokenizer

    from feedbackrl.train.reward_model import completion_token_counts

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    rows = [{"prompt": "Question: is this good?\nAnswer:", "chosen": " yes"}, {"prompt": "Q: 7 * 8?\nA:", "chosen": " 56"}]
    counts = completion_token_counts(tokenizer, rows)
    assert counts[1] == 3  # " ", "5", "6": digits are single tokens
    for row, count in zip(rows, counts):
        assert tokenizer.convert_tokens_to_string(tokenizer.tokenize(row["prompt"] + row["chosen"])[-count:]) == row["chosen"]


@pytest.mark.slow
def test_shipped_recipe_reaches_90_percent_on_the_generated_preference_set(tmp_path):
    """Issue 3's bar: `feedbackrl train-rm configs/rm_tiny.yaml` as shipped (a tiny backbone built
    from scratch, 5,000 generated pairs, 14 epochs) reaches 90% held-out pairwise accuracy on the
    generated set of right vs wrong answers and lists with vs without violations (about 10 minutes
    on one thread of the 2026-12-01 machines; docs/rewards.md)."""
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "configs" / "rm_tiny.yaml"
    config = load_config(shipped, RewardModelConfig, [f"out_dir={tmp_path}"])
    summary = train_reward_model(config)
    assert summary["held_out_pairs"] >= 1000
    assert set(summary["held_out_accuracy_by_kind"]) == {"arithmetic", "product_list"}
    assert summary["held_out_accuracy"] >= 0.90, summary["held_out_accuracy_by_epoch"]
    assert min(summary["held_out_accuracy_by_kind"].values()) >= 0.80, summary["held_out_accuracy_by_kind"]
