"""Open Bandit Dataset sample: reading it, the BTS target, and `feedbackrl ope` end to end."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from feedbackrl.cli import app
from feedbackrl.commands.errors import run_cli
from feedbackrl.tasks import obp_logs

try:
    obp_logs.obd_root()
except FileNotFoundError:
    pytest.skip("obp (with its OBD sample) is not installed", allow_module_level=True)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    argv = sys.argv
    sys.argv = ["feedbackrl", *args]
    try:
        code = run_cli(app)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def test_random_logs_have_uniform_propensities():
    rows = obp_logs.read_obd("random", "all")
    assert len(rows) == 10_000
    assert {r.position_propensities[0] for r in rows} == {1 / 80}
    assert {r.query for r in rows} == {"all slot 1", "all slot 2", "all slot 3"}
    assert obp_logs.num_items("men") == 34


@pytest.mark.parametrize("source", ["logged", "empirical", "prior"])
def test_bts_slot_probabilities_are_distributions(source):
    probs = obp_logs.bts_slot_probs("women", source, num_simulations=2000)
    assert probs.shape == (46, 3)
    assert probs.sum(axis=0) == pytest.approx(np.ones(3))


def test_on_policy_ctr_is_click_mean():
    ctr, stderr = obp_logs.on_policy_ctr("bts", "all")
    assert ctr == pytest.approx(42 / 10_000)  # 42 clicks in the 10,000 BTS rows of "all"
    assert stderr == pytest.approx(np.sqrt(ctr * (1 - ctr) / 9_999), rel=1e-3)


def test_cli_obd_json(capsys):
    code, out, _ = cli(capsys, "ope", "--obd", "--campaign", "men", "--bootstrap", "20", "--json")
    assert code == 0
    result = json.loads(out)  # exactly one JSON object
    assert set(result) == {"ips", "snips", "dm", "dr", "pbips", "meta"}
    for name in ("ips", "snips", "dr"):
        r = result[name]
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"] and r["ess"] > 0
    assert result["meta"]["on_policy_ctr"] == pytest.approx(0.0069)
    assert result["meta"]["impressions"] == 10_000


def test_cli_argument_errors_are_one_line(capsys, tmp_path):
    code, _, err = cli(capsys, "ope", "--obd", "--campaign", "kids")
    assert code == 2 and "--campaign must be one of" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "ope")
    assert code == 2 and "exactly one of --logs" in err
    bad = tmp_path / "logs.parquet"
    bad.write_text("not parquet")
    code, _, err = cli(capsys, "ope", "--logs", str(bad), "--policy", "bm25")
    assert code == 2 and str(bad) in err and err.count("\n") == 1
    code, _, err = cli(capsys, "ope", "--obd", "--estimators", "ips,magic")
    assert code == 2 and "unknown estimator" in err
