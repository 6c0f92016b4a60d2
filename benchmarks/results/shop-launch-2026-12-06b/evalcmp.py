# Greedy eval lists of one checkpoint under this tree's decode (fast) and the model's own forward (slow).
# PYTHONPATH=<tree> .venv/bin/python evalcmp.py CKPT STEP OUT.json
import sys, tempfile, json, torch
from pathlib import Path
from feedbackrl.config import load_config
from feedbackrl.train.config import RunConfig
from feedbackrl.train.shop_demo import shop_demo_config
from feedbackrl.train.recipe import build_task
from feedbackrl.policy.model import Policy
from feedbackrl.tasks.shop.text_format import parse_ranking
import feedbackrl
ckpt, step = sys.argv[1], int(sys.argv[2])
out = tempfile.mkdtemp()
cfg = shop_demo_config(load_config(str(Path(__file__).resolve().parents[3] / "configs" / "shop_grpo.yaml"), RunConfig, [f"out_dir={out}", "progress=false"]))
task = build_task(cfg)
task.on_train_step(step)
policy = Policy.load(ckpt)
policy.model.eval()
prompts = task.eval_prompts()
res = {}
for fast in (True, False):
    policy.fast_decode = fast
    with torch.no_grad():
        samples = policy.generate([p.text for p in prompts], 1, greedy=True, max_new_tokens=6,
                                  constraint=task.constraint(policy.tokenizer))
    res[fast] = [(p.reference.intent_id, p.reference.query,
                  parse_ranking(s.completion, task.world.catalog, task.world.calendar, p.reference.day, 5).items)
                 for p, s in zip(prompts, samples)]
diff = [(a, b) for a, b in zip(res[True], res[False]) if a[2] != b[2]]
print(feedbackrl.__file__, "day", task.day, "prompts", len(prompts), "lists differing fast vs model forward:", len(diff))
for a, b in diff: print(" ", a[0], a[1], a[2], "| forward:", b[2])
for a in res[True]:
    if a[0] in ("premium_phone", "foldable_phone"): print(" fast", a)
json.dump([a for a in res[True]], open(sys.argv[3], "w"))
