"""OPE on the shop simulator: SNIPS and DR land within 10% of the CTR each target gets online.

Small scale of benchmarks/ope_validation.py: 3,500 logged sessions from the Plackett-Luce
logger over BM25 (T = 0.5), truth from 7,000 online sessions per target with another seed.
The targets are ones the logger supports (docs/offline.md says why the others are left out).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ope_validation", Path(__file__).resolve().parent.parent / "benchmarks" / "ope_validation.py"
)
ope_validation = importlib.util.module_from_spec(_spec)
sys.modules["ope_validation"] = ope_validation  # dataclasses look their module up there
_spec.loader.exec_module(ope_validation)

TARGETS = ("pl-bm25:0.5", "pl-bm25:0.35", "pl-bm25:0.7", "bm25", "mix:bm25+pl-bm25:0.5")


@pytest.mark.slow
def test_snips_and_dr_within_ten_percent_of_online_ctr():
    rows = ope_validation.validate(num_logs=3500, num_online=7000, bootstrap=0, seed=0, names=TARGETS,
                                   logging_marginals="context", marginal_samples=20_000, target_samples=5000)
    assert len(rows) >= 4
    for row in rows:
        truth = row["truth"]
        for name in ("snips", "dr"):
            estimate = row["report"].estimates[name].estimate
            assert abs(estimate - truth) / truth < 0.10, (row["policy"], name, estimate, truth)
    # Sharper targets click more online, and the estimates keep that order.
    by_name = {row["policy"]: row for row in rows}
    sharp, flat = by_name["pl-bm25:0.35"], by_name["pl-bm25:0.7"]
    assert sharp["truth"] > flat["truth"]
    assert sharp["report"].estimates["snips"].estimate > flat["report"].estimates["snips"].estimate
