"""Logs to training data: rewards by hand, pair rules on a worked list, file outputs, CLI."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from feedbackrl.store.convert import (
    RewardWeights,
    default_render_prompt,
    interaction_reward,
    preference_pairs_of,
    to_labels,
    to_tuples,
    write_records,
)
from feedbackrl.store.interaction_files import write_interactions
from feedbackrl.store.schema import Interaction

# Worked list: a b c d e. Clicked: b, d. Bought: d. Carted: d.
WORKED = Interaction(
    impression_id="imp-1",
    items=["a", "b", "c", "d", "e"],
    clicks=[False, True, False, True, False],
    add_to_carts=[False, False, False, True, False],
    purchases=[False, False, False, True, False],
    query="red shoes",
    segment="bargain",
    list_log_propensity=-3.5,
)


def test_reward_by_hand():
    # 2 clicks * 1 + 1 cart * 2 + 1 purchase * 4 = 8; with weights (0.5, 0, 10): 1 + 0 + 10 = 11.
    assert interaction_reward(WORKED, RewardWeights()) == 8.0
    assert interaction_reward(WORKED, RewardWeights(click=0.5, add_to_cart=0.0, purchase=10.0)) == 11.0


def test_tuple_renders_prompt_and_list():
    (t,) = to_tuples([WORKED])
    assert t.prompt == "search: red shoes [bargain] ->"
    assert t.response == "a b c d e"
    assert t.reward == 8.0 and t.logged_logprob == -3.5
    (custom,) = to_tuples([WORKED], render_prompt=lambda it: f"Q={it.query}")
    assert custom.prompt == "Q=red shoes"
    assert default_render_prompt(Interaction("x", ["a"], [False], query="hat")) == "search: hat ->"


def test_pairs_on_the_worked_list():
    pairs = preference_pairs_of(WORKED)
    got = {(p.kind, p.preferred_item, p.other_item): (p.chosen, p.rejected) for p in pairs}
    # purchased over clicked-only: d over b. d is below b in the log, so chosen swaps them.
    # clicked over skipped-above: b over a; d over a and c (b was clicked, not skipped).
    assert got == {
        ("purchased_over_clicked", "d", "b"): ("a d c b e", "a b c d e"),
        ("clicked_over_skipped_above", "b", "a"): ("b a c d e", "a b c d e"),
        ("clicked_over_skipped_above", "d", "a"): ("d b c a e", "a b c d e"),
        ("clicked_over_skipped_above", "d", "c"): ("a b d c e", "a b c d e"),
    }
    # e is below the last click: it may never have been seen, so it is in no pair.
    assert all("e" not in (p.preferred_item, p.other_item) for p in pairs)


def test_no_clicks_no_pairs():
    assert preference_pairs_of(Interaction("x", ["a", "b"], [False, False])) == []


def test_labels_threshold():
    lonely = Interaction("imp-2", ["a", "b"], [False, False])
    labels = list(to_labels([WORKED, lonely]))
    assert [l.desirable for l in labels] == [True, False]
    assert [l.desirable for l in to_labels([WORKED], min_reward=9.0)] == [False]


def test_write_parquet_and_jsonl(tmp_path):
    records = list(to_tuples([WORKED, Interaction("imp-2", ["x"], [True])]))
    assert write_records(tmp_path / "t.parquet", records, chunk_rows=1) == 2
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.column("logged_logprob").to_pylist() == [-3.5, None]
    assert write_records(tmp_path / "t.jsonl", records) == 2
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert json.loads(lines[1])["reward"] == 1.0
    with pytest.raises(ValueError, match="must end in"):
        write_records(tmp_path / "t.csv", records)


def test_cli_convert_export_and_errors(tmp_path):
    from typer.testing import CliRunner

    from feedbackrl.cli import app
    from feedbackrl.store.event_log import EventLog

    runner = CliRunner()
    logs = tmp_path / "logs.parquet"
    write_interactions(logs, [WORKED])
    result = runner.invoke(app, ["logs", "convert", str(logs), "--to", "pairs", "--out", str(tmp_path / "p.jsonl")])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 4
    result = runner.invoke(app, ["logs", "convert", str(logs), "--to", "tuples", "--purchase-weight", "0",
                                 "--out", str(tmp_path / "t.parquet")])
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "t.parquet").column("reward").to_pylist() == [4.0]

    with EventLog(tmp_path / "ev.db") as log:
        log.log_impression("i1", ["a", "b"], query="q")
        log.log_event("e1", "i1", 0, "click")
    result = runner.invoke(app, ["logs", "export", str(tmp_path / "ev.db"), "--out", str(tmp_path / "ev.parquet")])
    assert result.exit_code == 0 and "wrote 1 impressions" in result.output
    result = runner.invoke(app, ["logs", "summary", str(tmp_path / "ev.parquet")])
    assert "CTR by position: 0: 1.0000, 1: 0.0000" in result.output


def test_cli_bad_log_is_one_line(tmp_path):
    from feedbackrl.cli import app
    from feedbackrl.commands.errors import run_cli
    import sys

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 garbage")
    argv = sys.argv
    sys.argv = ["feedbackrl", "logs", "convert", str(bad), "--to", "tuples", "--out", str(tmp_path / "o.jsonl")]
    try:
        assert run_cli(app) == 2
    finally:
        sys.argv = argv
    assert not (tmp_path / "o.jsonl").exists()


def test_item_rewards_by_hand_and_in_files(tmp_path):
    from feedbackrl.store.convert import item_rewards

    # b clicked (1); d clicked, carted, bought (1 + 2 + 4); the items' parts sum to the reward
    assert item_rewards(WORKED, RewardWeights()) == [0.0, 1.0, 0.0, 7.0, 0.0]
    assert item_rewards(WORKED, RewardWeights(click=0.5, add_to_cart=0.0, purchase=10.0)) == [0.0, 0.5, 0.0, 10.5, 0.0]
    (t,) = to_tuples([WORKED])
    assert t.item_rewards == [0.0, 1.0, 0.0, 7.0, 0.0] and sum(t.item_rewards) == t.reward
    write_records(tmp_path / "t.parquet", [t])
    assert pq.read_table(tmp_path / "t.parquet").column("item_rewards").to_pylist() == [[0.0, 1.0, 0.0, 7.0, 0.0]]
