import json
import math
from decimal import Decimal

import numpy as np
import pytest
from typer.testing import CliRunner

from feedbackrl.commands.errors import UserError
from feedbackrl.commands.rewards import app
from feedbackrl.rewards.audit import distribution, error_kind, read_rollouts, summarize_rollouts, write_rollouts
from feedbackrl.sample import Sample


def _step_samples(step: int) -> list[Sample]:
    return [
        Sample("2+2?", "4", reward=1.0, details={"components": {"answer": 1.0, "pii": 1.0}, "rule": Decimal("1.50")},
               group_id=0, metadata={"segment": "a"}),
        Sample("3+3?", f"7 call 555-123-4567 step {step}", reward=-1.0,
               details={"components": {"answer": 0.0, "pii": 0.0}, "gates_failed": ["pii"]}, group_id=0),
        Sample("q", "x", reward=None, error="answer: check took 5.0s", details={"components": {"answer": None, "pii": 1.0}},
               group_id=1),
    ]


@pytest.fixture
def run_dir(tmp_path):
    for step in (1, 2, 3):
        write_rollouts(tmp_path / "rollouts.parquet", _step_samples(step), step)
    return tmp_path


def test_round_trip_across_steps(run_dir):
    table = read_rollouts(run_dir)
    rows = table.to_pylist()
    assert len(rows) == 9
    assert [(r["step"], r["index"]) for r in rows] == [(s, i) for s in (1, 2, 3) for i in range(3)]
    first = rows[0]
    assert first["reward"] == 1.0 and first["prompt"] == "2+2?" and first["group_id"] == 0
    assert json.loads(first["details"])["rule"] == "1.50"  # Decimal kept as text, not lost
    assert json.loads(first["metadata"]) == {"segment": "a"}
    errored = rows[2]
    assert errored["reward"] is None and errored["error"] == "answer: check took 5.0s"


def test_rewriting_a_step_replaces_it_and_leftovers_are_ignored(run_dir):
    write_rollouts(run_dir / "rollouts.parquet", _step_samples(2)[:1], 2)  # a resumed run replays step 2
    (run_dir / "rollouts.parquet" / ".step-00000004.parquet.99.tmp").write_bytes(b"half a file")  # a crash
    rows = read_rollouts(run_dir).to_pylist()
    assert [r["step"] for r in rows] == [1, 1, 1, 2, 3, 3, 3]
    assert [r["step"] for r in read_rollouts(run_dir, steps=[3]).to_pylist()] == [3, 3, 3]


def test_duckdb_reads_the_directory(run_dir):
    duckdb = pytest.importorskip("duckdb")
    pattern = str(run_dir / "rollouts.parquet" / "*.parquet")
    [(n, mean)] = duckdb.sql(f"select count(*), avg(reward) from read_parquet('{pattern}')").fetchall()
    assert n == 9 and mean == pytest.approx(0.0)


def test_missing_rollouts_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run"):
        read_rollouts(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no rollouts found"):
        read_rollouts(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a rollouts directory"):
        write_rollouts(tmp_path / "file", [], 0)


def test_distribution_against_numpy():
    values = [1.0, 2.0, 3.0, 4.0, 10.0, -2.5, 0.25, 7.0, 7.0, 3.5, 8.0, 9.5, 6.25]  # 12 distinct values
    d = distribution(values)
    arr = np.array(values)
    assert d["count"] == 13
    assert d["mean"] == pytest.approx(arr.mean())
    assert d["std"] == pytest.approx(arr.std())
    for key, q in (("p25", 25), ("p50", 50), ("p75", 75)):
        assert d[key] == pytest.approx(np.percentile(arr, q))
    counts, edges = np.histogram(arr, bins=10)
    assert [c for _, _, c in d["histogram"]] == counts.tolist()
    assert [lo for lo, _, _ in d["histogram"]] == pytest.approx(edges[:-1].tolist())


def test_distribution_few_values_and_empty():
    d = distribution([1.0, 0.0, 1.0, math.nan])
    assert d["histogram"] == [(0.0, 0.0, 1), (1.0, 1.0, 2)]
    assert distribution([]) == {"count": 0}


def test_summary(run_dir):
    summary = summarize_rollouts(read_rollouts(run_dir).to_pylist())
    assert summary["rows"] == 9 and summary["steps"] == (1, 3)
    assert summary["reward"]["count"] == 6 and summary["reward"]["mean"] == 0.0
    assert summary["components"]["answer"]["count"] == 6  # errored (None) values left out
    assert summary["components"]["pii"]["mean"] == pytest.approx(2 / 3)
    assert summary["gate_failures"] == {"pii": 3}
    assert summary["errors"] == 3
    assert summary["error_kinds"] == {"answer: check took Ns": 3}
    assert error_kind("timeout") == "timeout"


def test_inspect_cli(run_dir):
    result = CliRunner().invoke(app, ["inspect", str(run_dir), "--top", "1"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "9 rollouts, steps 1–3" in out
    assert "errors: 3 of 9" in out and "answer: check took Ns" in out
    assert "gate failures: pii 3" in out
    assert "worst 1" in out and "555-123-4567 step 1" in out  # lowest score, earliest first
    assert "best 1" in out and "2+2?" in out


@pytest.mark.parametrize("args", [["inspect", "/no/such/run"], ["inspect", "{tmp}"], ["inspect", "{run}", "--top", "-1"]])
def test_inspect_bad_input_is_one_line_user_error(args, tmp_path, run_dir):
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path / "empty", run=run_dir) for a in args]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, UserError)
    assert "\n" not in str(result.exception)


def test_list_names_builtin_rewards():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    for name in ("math", "token_f1", "ranking", "rules", "pii", "combined"):
        assert name in result.output


def test_details_with_numpy_values_are_stored_as_plain_json():
    from feedbackrl.rewards.audit import to_json

    assert json.loads(to_json({"a": np.float64(1.5), "b": np.arange(3), "c": {2, 1}, "d": Decimal("0.10")})) == {
        "a": 1.5, "b": [0, 1, 2], "c": [1, 2], "d": "0.10"}
