"""`feedbackrl ope --logs`: event-log exports and `shop simulate --log` files -> one JSON object of estimates."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from feedbackrl.cli import app
from feedbackrl.commands.errors import run_cli
from feedbackrl.store.event_log import Event, EventLog


def cli(capsys, *args):
    argv, sys.argv = sys.argv, ["feedbackrl", *args]
    try:
        code = run_cli(app)
    finally:
        sys.argv = argv
    return (code, *capsys.readouterr())


@pytest.fixture(scope="module")
def exported_logs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ope_logs")
    # Uniformly random ordered pairs of 4 items: marginal 1/4 per position, list prob 1/12.
    rng = np.random.default_rng(0)
    attractiveness = {"a": 0.5, "b": 0.3, "c": 0.2, "d": 0.1}
    with EventLog(tmp_path / "events.db") as log:
        events, impressions = [], []
        for i in range(2000):
            items = [str(s) for s in rng.choice(list(attractiveness), 2, replace=False)]
            impressions.append(dict(impression_id=f"i{i}", items=items, query="shoes",
                                    position_propensities=[0.25, 0.25], list_propensity=1 / 12))
            for k, sku in enumerate(items):
                if rng.random() < attractiveness[sku] * (1.0, 0.5)[k]:
                    events.append(Event(f"e{i}-{k}", f"i{i}", k, "click"))
        # One transaction for the events: synchronous=FULL makes each lone write an fsync.
        assert log.log_impressions(impressions).stored == 2000
        assert not log.log_events(events).rejected
        log.export_parquet(tmp_path / "logs.parquet", batch_rows=500)
    return tmp_path / "logs.parquet"


def test_ope_json_for_popularity_and_random(capsys, exported_logs):
    code, out, err = cli(capsys, "ope", "--logs", str(exported_logs), "--policy", "popularity", "--bootstrap", "20", "--json")
    assert code == 0, err
    result = json.loads(out)
    # Popularity shows a then b: true CTR = (0.5 * 1 + 0.3 * 0.5) / 2 = 0.325.
    for name in ("snips", "dr", "dm"):
        assert result[name]["estimate"] == pytest.approx(0.325, rel=0.1)
    assert result["meta"]["target"] == "popularity"
    # Uniform over the 4 candidates: mean attractiveness 0.275 times mean examination 0.75.
    code, out, _ = cli(capsys, "ope", "--logs", str(exported_logs), "--policy", "random", "--bootstrap", "0", "--json")
    assert code == 0
    assert json.loads(out)["snips"]["estimate"] == pytest.approx(0.275 * 0.75, rel=0.1)


def test_ope_table_and_unknown_policy(capsys, exported_logs):
    code, out, _ = cli(capsys, "ope", "--logs", str(exported_logs), "--policy", "popularity", "--bootstrap", "0")
    assert code == 0 and "snips" in out and "estimate" in out
    code, _, err = cli(capsys, "ope", "--logs", str(exported_logs), "--policy", "telepathy")
    assert code == 2 and "unknown --policy" in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def shop_logs(tmp_path_factory):
    """Two days of the shop's logging policy, written by `feedbackrl shop simulate --log`."""
    path = tmp_path_factory.mktemp("shop_logs") / "pl.parquet"
    argv, sys.argv = sys.argv, ["feedbackrl", "shop", "simulate", "--policy", "pl-bm25:0.5", "--days", "2",
                                "--sessions-per-day", "200", "--seed", "3", "--set", "marginal_samples=300",
                                "--log", str(path)]
    try:
        assert run_cli(app) == 0
    finally:
        sys.argv = argv
    return path


def test_ope_json_on_shop_simulate_log(capsys, shop_logs):
    capsys.readouterr()
    code, out, err = cli(capsys, "ope", "--logs", str(shop_logs), "--policy", "pl-bm25:0.5", "--bootstrap", "30",
                         "--target-samples", "5000", "--json")
    assert code == 0, err
    result = json.loads(out)  # exactly one JSON object on stdout
    assert set(result) == {"ips", "snips", "dm", "dr", "pbips", "meta"}
    for name in ("ips", "snips", "dr", "pbips"):
        r = result[name]
        assert set(r) == {"estimate", "ci_low", "ci_high", "ess"}
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"] and r["ess"] > 0
    assert result["dm"]["ess"] is None
    meta = result["meta"]
    assert meta["target"] == "pl-bm25:0.5" and meta["impressions"] == 400 and meta["positions"] == 5
    # The target is the logger: weights are ~1 (two Monte Carlo estimates of one marginal), so
    # SNIPS is close to the logged CTR and the effective sample size close to the rounds.
    assert result["snips"]["estimate"] == pytest.approx(meta["logged_ctr"], rel=0.1)
    assert meta["ess_fraction"] > 0.8


def test_ope_deterministic_shop_target_and_errors(capsys, shop_logs, exported_logs):
    capsys.readouterr()
    code, out, err = cli(capsys, "ope", "--logs", str(shop_logs), "--policy", "bm25", "--bootstrap", "0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["meta"]["target"] == "bm25" and 0 < result["snips"]["estimate"] < 1
    # Shop rankers need shop logs; the message names a query that is not a shop phrasing.
    code, _, err = cli(capsys, "ope", "--logs", str(exported_logs), "--policy", "bm25")
    assert code == 2 and "'shoes'" in err and err.count("\n") == 1
    code, _, err = cli(capsys, "ope", "--logs", str(shop_logs), "--policy", "pl-bm25:hot")
    assert code == 2 and "temperature must be a number" in err and err.count("\n") == 1
