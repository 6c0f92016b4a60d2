"""`feedbackrl demo`: the main job on the embedded default.

Until the shop demo is wired, this trains the arithmetic GRPO config from a partial warm
start and prints held-out accuracy before and after.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from feedbackrl.commands.errors import UserError

CONFIG = Path("configs/arithmetic_grpo.yaml")


def run_demo(out_dir: Path, fresh: bool = True) -> dict:
    from rich.console import Console

    from feedbackrl.commands.core import _print_evals
    from feedbackrl.config import load_config
    from feedbackrl.train.config import RunConfig
    from feedbackrl.train.recipe import run_dir_of, train

    if not CONFIG.exists():
        raise UserError(f"{CONFIG}: not found; run the demo from the repository root")
    console = Console()
    cfg = load_config(CONFIG, RunConfig, [f"out_dir={out_dir}", "name=demo-arithmetic"])
    if fresh:
        shutil.rmtree(run_dir_of(cfg), ignore_errors=True)
    console.rule("feedbackrl demo: GRPO on arithmetic, tiny model built here")
    summary = train(cfg, resume=not fresh, log=console.print)
    _print_evals(summary)
    before, after = summary["initial_eval"]["accuracy"], summary["final_eval"]["accuracy"]
    console.print(f"held-out accuracy {before:.1%} -> {after:.1%} in {summary['wall_seconds']:.0f}s; "
                  f"report: {summary['run_dir']}/summary.json")
    return summary
