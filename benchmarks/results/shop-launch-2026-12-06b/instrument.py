# Run shop_launch.py with every replayed forward checked against a plain forward of the same batch.
# PYTHONPATH=<tree> OMP_NUM_THREADS=1 .venv/bin/python instrument.py --seed 1 --tag T --out runs.jsonl
import sys
from pathlib import Path

import torch
from feedbackrl.policy.model import Policy
orig = Policy.token_logprobs
stats = []
def wrapped(self, batch, **kw):
    out = orig(self, batch, **kw)
    if kw.get("record") is not None:
        with torch.no_grad():
            plain = orig(self, batch, temperature=kw.get("temperature", 1.0))
        m = batch.completion_mask.bool()
        d = float((out["logprobs"].detach() - plain["logprobs"])[m].abs().max())
        d_old = float((plain["logprobs"] - batch.old_logprobs)[m].abs().max())
        stats.append((bool(out.get("replayed", False)), d, d_old))
        if len(stats) % 50 == 0 or d > 1e-4:
            print("CHECK", len(stats), stats[-1], flush=True)
    return out
Policy.token_logprobs = wrapped
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/
import shop_launch
rc = shop_launch.main(sys.argv[1:])
rep = [s for s in stats if s[0]]
print("SUMMARY calls", len(stats), "replayed", len(rep), "max replay-vs-plain", max((s[1] for s in rep), default=None),
      "max plain-vs-old (replayed calls)", max((s[2] for s in rep), default=None),
      "max plain-vs-old (all)", max((s[2] for s in stats), default=None))
