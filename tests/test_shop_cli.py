"""`feedbackrl shop simulate` and `shop check`: tables, JSON, logs and one-line errors."""

from __future__ import annotations

import json
import sys

from feedbackrl.cli import app
from feedbackrl.commands.errors import run_cli


def cli(capsys, *args):
    argv, sys.argv = sys.argv, ["feedbackrl", *args]
    try:
        code = run_cli(app)
    finally:
        sys.argv = argv
    return (code, *capsys.readouterr())


class FirstTwoRanker:
    """Any object with rank(...) plugs into the simulator (the hook a trained policy uses)."""

    name = "first-two"

    def __init__(self, world):
        self.world = world

    def rank(self, query, segment, day, k, rng):
        from feedbackrl.tasks.shop.baselines import deterministic

        return deterministic([p.sku for p in self.world.candidates(segment, day)[:2]])


def make_first_two(world):
    return FirstTwoRanker(world)


def test_simulate_writes_json_and_prints_table(capsys, tmp_path):
    out = tmp_path / "sim.json"
    code, stdout, stderr = cli(capsys, "shop", "simulate", "--policy", "bm25,oracle", "--days", "4",
                               "--sessions-per-day", "60", "--seed", "1", "--out", str(out))
    assert code == 0, stderr
    assert "oracle" in stdout and "mobile" in stdout and "launched day 3" in stdout
    data = json.loads(out.read_text())
    bm25, oracle = data["reports"]
    assert bm25["overall"]["sessions"] == 240 == oracle["overall"]["sessions"]
    assert oracle["overall"]["ctr"] > bm25["overall"]["ctr"]
    assert oracle["days_to_top3"]["SM-F956-256"]["foldable_phone"] == 0
    assert set(bm25["per_segment"]) == {"mobile", "tv", "appliances"}
    assert data["config"]["traffic"]["days"] == 4


def test_simulate_plugged_ranker_and_log(capsys, tmp_path):
    from feedbackrl.store.interaction_files import iter_interaction_records

    log = tmp_path / "logs.parquet"
    code, stdout, stderr = cli(capsys, "shop", "simulate", "--policy", "tests.test_shop_cli:make_first_two",
                               "--days", "1", "--sessions-per-day", "20", "--log", str(log))
    assert code == 0, stderr
    rows = list(iter_interaction_records(log))
    assert len(rows) == 20 and all(len(r.items) == 2 for r in rows)
    code, _, _ = cli(capsys, "shop", "simulate", "--policy", "pl-bm25:0.5", "--days", "1", "--sessions-per-day", "10",
                     "--set", "marginal_samples=200", "--log", str(log))
    assert code == 0
    rows = list(iter_interaction_records(log))
    assert all(r.position_propensities and 0 < r.list_propensity <= 1 for r in rows)


def test_errors_are_one_line(capsys, tmp_path):
    bad = tmp_path / "catalog.json"
    bad.write_text(json.dumps({"segments": {"m": ["phone"]},
                               "products": [{"sku": "A1", "title": "t", "category": "phone", "description": "",
                                             "attributes": {}}]}))
    code, _, stderr = cli(capsys, "shop", "check", "--catalog", str(bad))
    assert code == 2
    assert stderr.strip() == f"error: {bad}: products[0] (sku A1): attributes.price: missing field"
    code, _, stderr = cli(capsys, "shop", "simulate", "--policy", "magic", "--days", "1")
    assert code == 2 and "unknown ranker 'magic'" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = cli(capsys, "shop", "simulate", "--set", "traffic.shoppers.bot_rate=2", "--days", "1")
    assert code == 2 and "bot_rate: must be within [0, 1]" in stderr


def test_check_bundled_data(capsys):
    code, stdout, _ = cli(capsys, "shop", "check")
    assert code == 0 and "177 products" in stdout and "Festival sale starts" in stdout
