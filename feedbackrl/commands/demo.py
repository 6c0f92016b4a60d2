"""`feedbackrl demo`: the main job on the embedded default.

The shop (default): a tiny model learns e-commerce search from simulated shoppers, from a BM25
warm start, through a product launch (configs/shop_grpo.yaml; feedbackrl/train/shop_demo.py).
It prints the scenario table and writes runs/shop-grpo/report.html.
`--task arithmetic` trains the arithmetic GRPO config instead and prints held-out accuracy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from feedbackrl.commands.errors import UserError

CONFIGS = {"shop": Path("configs/shop_grpo.yaml"), "arithmetic": Path("configs/arithmetic_grpo.yaml")}


def _config(task: str, out_dir: Path, overrides: list[str] | None):
    from feedbackrl.config import load_config
    from feedbackrl.train.config import RunConfig

    if task not in CONFIGS:
        raise UserError(f"demo: --task must be one of {', '.join(CONFIGS)}, got {task!r}")
    path = CONFIGS[task]
    if not path.exists():
        raise UserError(f"{path}: not found; run the demo from the repository root")
    return load_config(path, RunConfig, [f"out_dir={out_dir}"] + list(overrides or []))


def run_demo(out_dir: Path, fresh: bool = True, task: str = "shop", overrides: list[str] | None = None) -> dict:
    if task == "arithmetic":
        return run_arithmetic_demo(out_dir, fresh)
    return run_shop_demo_cli(out_dir, fresh, overrides)


def run_shop_demo_cli(out_dir: Path, fresh: bool = True, overrides: list[str] | None = None) -> dict:
    import json

    from rich.console import Console

    from feedbackrl.report import scenario_table
    from feedbackrl.train.shop_demo import run_shop_demo

    console = Console(width=max(Console().width, 130))
    cfg = _config("shop", out_dir, overrides)
    console.rule("feedbackrl demo: the shop - BM25 warm start, then GRPO from simulated shoppers through a launch")
    summary = run_shop_demo(cfg, fresh=fresh, log=console.print)
    run_dir = Path(summary["run_dir"])
    console.print(scenario_table(json.loads((run_dir / "scenarios.json").read_text())))
    f6 = summary["fold6_days_to_top3"]
    console.print(
        f"held-out CTR {summary['final_eval']['ctr']:.3f}: {summary['ctr_vs_bm25']:.2f}x BM25, "
        f"{summary['ctr_vs_oracle']:.0%} of the oracle; conversion {summary['conversion_vs_bm25']:.2f}x BM25; "
        f"launch in the top 3 of its intents after {'never' if f6 is None else f'{f6} day(s)'}; "
        f"gaming S23 Ultra above A54 in the whole order: {summary['gaming_s23_above_a54']} (oracle: "
        f"{summary.get('gaming_s23_above_a54_oracle')}), shown in the top k: "
        f"{summary.get('gaming_s23_above_a54_shown')}; {summary['wall_seconds']:.0f}s")
    console.print(f"report: {run_dir / 'report.html'}   summary: {run_dir / 'summary.json'}")
    return summary


def run_arithmetic_demo(out_dir: Path, fresh: bool = True) -> dict:
    from rich.console import Console

    from feedbackrl.commands.core import _print_evals
    from feedbackrl.train.recipe import run_dir_of, train

    console = Console()
    cfg = _config("arithmetic", out_dir, ["name=demo-arithmetic"])
    if fresh:
        shutil.rmtree(run_dir_of(cfg), ignore_errors=True)
    console.rule("feedbackrl demo: GRPO on arithmetic, tiny model built here")
    summary = train(cfg, resume=not fresh, log=console.print)
    _print_evals(summary)
    before, after = summary["initial_eval"]["accuracy"], summary["final_eval"]["accuracy"]
    console.print(f"held-out accuracy {before:.1%} -> {after:.1%} in {summary['wall_seconds']:.0f}s; "
                  f"report: {summary['run_dir']}/summary.json")
    return summary
