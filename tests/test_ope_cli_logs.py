"""`feedbackrl ope --logs`: event log -> Parquet export -> one JSON object of estimates."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from feedbackrl.cli import app
from feedbackrl.commands.errors import run_cli
from feedbackrl.store.event_log import Event, EventLog

pytest.importorskip("feedbackrl.algos.offpolicy")


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
