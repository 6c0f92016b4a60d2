"""Offline data and config at the boundary: files, columns, propensities, one-line errors, the CLI."""

import json
import math
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import typer

from feedbackrl.commands import offline as offline_command
from feedbackrl.commands.errors import run_cli
from feedbackrl.config import ConfigError, load_config
from feedbackrl.train.offline import OfflineConfig
from feedbackrl.train.offline_data import (
    OfflineDataError, best_responses, load_pairs, load_tuples, prompt_mean_rewards,
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_tuples_from_convert_parquet_and_propensity_column(tmp_path):
    # the columns `feedbackrl logs convert --to tuples` writes
    table = pa.table({"prompt": ["p", "q"], "response": ["A B", "B A"], "reward": [1.0, 0.0],
                      "impression_id": ["i1", "i2"], "logged_logprob": [math.log(0.25), math.log(0.5)],
                      "policy_version": ["pl", "pl"]})
    pq.write_table(table, tmp_path / "t.parquet")
    jsonl = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "r", "response": "C", "reward": 2, "propensity": 0.125}])
    data = load_tuples([tmp_path / "t.parquet", jsonl], need_propensity=True, completion_prefix=" ")
    assert data.responses == [" A B", " B A", " C"]
    assert data.rewards.tolist() == [1.0, 0.0, 2.0]
    assert data.logged_logprobs.tolist() == pytest.approx([math.log(0.25), math.log(0.5), math.log(0.125)])


def test_tuples_without_propensity_are_fine_unless_needed(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "p", "response": "A", "reward": 1.0}])
    assert load_tuples([path]).logged_logprobs is None
    with pytest.raises(OfflineDataError, match=r"t.jsonl: missing column 'logged_logprob' \(or 'propensity'\)"):
        load_tuples([path], need_propensity=True)


@pytest.mark.parametrize("rows, message", [
    ([{"prompt": "p", "response": "A"}], r"missing column 'reward' \(tuples need prompt, response, reward"),
    ([{"prompt": "p", "response": "A", "reward": "high"}], r"row 1: column 'reward' must be a finite number, got 'high'"),
    ([{"prompt": "p", "response": "A", "reward": 1, "propensity": 0.0}], r"row 1: column 'propensity' must be in \(0, 1\]"),
    ([{"prompt": "p", "response": "A", "reward": 1, "logged_logprob": 0.5}], r"row 1: column 'logged_logprob' is a log-probability"),
    ([{"prompt": "p", "response": None, "reward": 1}], r"row 1: column 'response' must be a string, got None"),
    ([], r"no rows"),
])
def test_bad_tuple_files_fail_with_one_line(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(OfflineDataError, match=message) as e:
        load_tuples([path], need_propensity="propensity" in str(rows) or "logged" in str(rows))
    assert "\n" not in str(e.value) and str(e.value).startswith(str(path))


def test_missing_files_and_formats(tmp_path):
    with pytest.raises(OfflineDataError, match="nope.parquet: no such data file"):
        load_pairs([tmp_path / "nope.parquet"])
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(OfflineDataError, match=r"x.csv: expected a .parquet or .jsonl file"):
        load_pairs([tmp_path / "x.csv"])
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(OfflineDataError, match="broken.parquet: not a readable Parquet file"):
        load_pairs([tmp_path / "broken.parquet"])
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "chosen": "A"}])
    with pytest.raises(OfflineDataError, match=r"missing column 'rejected' \(preference pairs need prompt, chosen, rejected"):
        load_pairs([path])


def test_prompt_mean_rewards_and_best_responses():
    rewards = torch.tensor([1.0, 3.0, 5.0, 0.0], dtype=torch.float64)
    prompts = ["a", "b", "a", "b"]
    assert prompt_mean_rewards(prompts, rewards).tolist() == [3.0, 1.5, 3.0, 1.5]
    assert best_responses(prompts, ["x", "y", "z", "w"], rewards) == [("a", "z"), ("b", "y")]


@pytest.mark.parametrize("text, message", [
    ("method: ppo\ndata: [a.jsonl]\n", "method: must be one of 'dpo', 'ipo', 'awr', 'rwr', 'opg', got 'ppo'"),
    ("method: dpo\n", "data: give at least one .parquet or .jsonl file"),
    ("data: [a.jsonl]\ndpo: {beta: 0}\n", "dpo.beta: must be > 0"),
    ("data: [a.jsonl]\nweighted: {temperature: -1}\n", "weighted.temperature: must be > 0"),
    ("data: [a.jsonl]\nopg: {baseline: median}\n", "opg.baseline: must be one of"),
    ("data: [a.jsonl]\nepochs: 0\n", "epochs and batch_size: must be >= 1"),
    ("data: a.jsonl\n", "data: expected a list"),
    ("data: [a.jsonl]\nlearning_rate: 1\n", "learning_rate: unknown key"),
])
def test_config_errors_are_one_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path, OfflineConfig)
    assert message in str(e.value) and str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_shipped_configs_load():
    for method in ("dpo", "awr", "opg"):
        cfg = load_config(f"configs/offline_{method}.yaml", OfflineConfig)
        assert cfg.method == method


def cli(capsys, *args):
    app = typer.Typer()
    offline_command.register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the app into one
        pass

    argv, sys.argv = sys.argv, ["feedbackrl", *args]
    try:
        code = run_cli(app)
    finally:
        sys.argv = argv
    return (code, *capsys.readouterr())


def test_cli_trains_and_reports(tiny_model_dir, tmp_path, capsys):
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "search: phone ->", "chosen": " SKU-A", "rejected": " SKU-B"}] * 4)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"method: dpo\ndata: [{pairs}]\nmodel: {{path: {tiny_model_dir}}}\nout_dir: {tmp_path}\nprogress: false\n")
    code, out, err = cli(capsys, "train-offline", str(cfg), "--set", "batch_size=2", "--set", "name=cli")
    assert code == 0, err
    assert "dpo: 4 rows, 2 steps" in out
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["steps"] == 2


def test_cli_data_error_is_one_red_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"method: awr\ndata: [{tmp_path / 'missing.parquet'}]\nout_dir: {tmp_path}\nprogress: false\n")
    code, out, err = cli(capsys, "train-offline", str(cfg))
    assert code == 2
    assert err.strip() == f"error: {tmp_path / 'missing.parquet'}: no such data file"


def test_item_rewards_column_for_per_item_credit(tmp_path):
    good = write_jsonl(tmp_path / "t.jsonl", [{"prompt": "p", "response": "A B", "reward": 2, "item_rewards": [0, 2]}])
    assert load_tuples([good]).item_rewards is None  # read only when asked for
    assert load_tuples([good], need_item_rewards=True, completion_prefix=" ").item_rewards == [[0.0, 2.0]]
    for rows, message in [
        ([{"prompt": "p", "response": "A B", "reward": 1}], r"missing column 'item_rewards' \(per-item credit"),
        ([{"prompt": "p", "response": "A B", "reward": 1, "item_rewards": [1]}],
         r"row 1: column 'item_rewards' must be a list of 2 numbers \(one per item of the response\), got \[1\]"),
        ([{"prompt": "p", "response": "A", "reward": 1, "item_rewards": ["x"]}], r"row 1: column 'item_rewards' must hold finite numbers, got 'x'"),
        ([{"prompt": "p", "response": "A", "reward": 1, "item_rewards": None}], r"row 1: column 'item_rewards' must be a list of 1 numbers"),
    ]:
        path = write_jsonl(tmp_path / "bad.jsonl", rows)
        with pytest.raises(OfflineDataError, match=message) as e:
            load_tuples([path], need_item_rewards=True)
        assert "\n" not in str(e.value) and str(e.value).startswith(str(path))
