# The update's gradient with the decode's record replayed vs a plain forward, on real shop rollouts.
# Run from a checkout (PYTHONPATH=<tree>) with a trained shop checkpoint: python replay_gradient_check.py CKPT_DIR [STEP]
# Output of 2026-12-06: README.md in this folder.
import sys, tempfile, torch
from pathlib import Path
from feedbackrl.config import load_config
from feedbackrl.train.config import RunConfig
from feedbackrl.train.shop_demo import shop_demo_config
from feedbackrl.train.recipe import build_task
from feedbackrl.train.online import OnlineTrainer
from feedbackrl.policy.model import Policy
import feedbackrl; print(feedbackrl.__file__)
ckpt = sys.argv[1]
out = tempfile.mkdtemp()
cfg = shop_demo_config(load_config(str(Path(__file__).resolve().parents[3] / "configs" / "shop_grpo.yaml"), RunConfig, [f"out_dir={out}", "progress=false", "optim.max_grad_norm=1000000000.0"]))
task = build_task(cfg)
policy = Policy.load(ckpt)
task.on_train_step(int(sys.argv[2]) if len(sys.argv) > 2 else 200)
tr = OnlineTrainer(cfg, task, policy, out)
tr.optimizer.step = lambda *a, **k: None
res = []
for trial in range(3):
    roll, _ = tr._rollout()
    batch, ref = tr._prepared_batch(roll)
    idx = torch.arange(len(batch))
    grads = []
    for use in (True, False):
        rec = tr._record
        if not use: tr._record = None
        policy.train()
        st = tr._update(batch.select(idx))
        policy.eval()
        grads.append(torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None]).clone())
        tr._record = rec
        print("replayed" if use else "plain", st.get("update/replayed"), round(st["loss/policy"], 6))
    a, b = grads
    print(trial, "rel diff", float((a - b).norm() / b.norm()), "cos", float(torch.nn.functional.cosine_similarity(a, b, dim=0)), "norm", float(b.norm()))
