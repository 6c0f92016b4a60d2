"""OPE on a simulator: SNIPS and DR land within 10% of the CTR each target gets online."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("feedbackrl.algos.offpolicy")

_spec = importlib.util.spec_from_file_location(
    "ope_validation", Path(__file__).resolve().parent.parent / "benchmarks" / "ope_validation.py"
)
ope_validation = importlib.util.module_from_spec(_spec)
sys.modules["ope_validation"] = ope_validation  # dataclasses look their module up there
_spec.loader.exec_module(ope_validation)


@pytest.mark.slow
def test_snips_and_dr_within_ten_percent_of_online_ctr():
    rows = ope_validation.validate(num_logs=6000, num_online=20_000, bootstrap=0, seed=0)
    assert len(rows) >= 4
    for row in rows:
        truth = row["truth"]
        for name in ("snips", "dr"):
            estimate = row["report"].estimates[name].estimate
            assert abs(estimate - truth) / truth < 0.10, (row["policy"], name, estimate, truth)
