"""`feedbackrl train | eval | init-model | demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from feedbackrl.commands.errors import UserError


def _console():
    from rich.console import Console

    return Console()


def _print_evals(summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{summary.get('algo', '')} on {summary.get('task', '')}: held-out evaluation")
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("change", justify="right")
    before, after = summary.get("initial_eval") or {}, summary.get("final_eval") or {}
    for key in after:
        b, a = before.get(key), after[key]
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            table.add_row(key, f"{b:.3f}", f"{a:.3f}", f"{a - b:+.3f}")
    _console().print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: Path = typer.Argument(..., help="YAML run config (see configs/)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a key: --set algo.kl_coef=0.05"),
        fresh: bool = typer.Option(False, help="Ignore existing checkpoints of this run and start over."),
        no_progress: bool = typer.Option(False, "--no-progress", help="No live progress bar."),
    ):
        """Train a policy online (PPO or GRPO) as the config says; resumes from the last checkpoint."""
        from feedbackrl.config import load_config
        from feedbackrl.train.config import RunConfig
        from feedbackrl.train.recipe import train as run_training

        cfg = load_config(config, RunConfig, set_)
        if no_progress:
            cfg.progress = False
        summary = run_training(cfg, resume=not fresh, log=_console().print)
        _print_evals(summary)
        _console().print(f"summary: {summary['run_dir']}/summary.json  ({summary['wall_seconds']:.1f}s)")

    @app.command("eval")
    def eval_(
        checkpoint: Path = typer.Argument(..., help="A checkpoint or model directory."),
        task: str = typer.Option("arithmetic", help="Task to evaluate on: arithmetic or shop."),
        config: Optional[Path] = typer.Option(None, help="Run config whose task section to use."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key."),
        json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ):
        """Evaluate a checkpoint on a task's held-out prompts (greedy decoding)."""
        from feedbackrl.config import load_config
        from feedbackrl.train.config import RunConfig
        from feedbackrl.train.recipe import evaluate_checkpoint

        if not checkpoint.is_dir() or not (checkpoint / "config.json").exists():
            raise UserError(f"{checkpoint}: not a model directory (no config.json)")
        overrides = list(set_ or [])
        if config is None:
            overrides.append(f"task={task}")
        cfg = load_config(config, RunConfig, overrides)
        metrics = evaluate_checkpoint(checkpoint, cfg)
        if json_out:
            typer.echo(json.dumps(metrics))
        else:
            for k, v in metrics.items():
                typer.echo(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")

    @app.command("init-model")
    def init_model(
        out: Path = typer.Option(Path("runs/tiny-model"), "--out", help="Directory to write the model to."),
        task: str = typer.Option("arithmetic", help="Task whose text trains the tokenizer."),
        config: Optional[Path] = typer.Option(None, help="Run config (its model.tiny and task sections)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key."),
    ):
        """Build the embedded default: a BPE tokenizer trained on the task's text + a tiny Llama."""
        from feedbackrl.config import load_config
        from feedbackrl.policy.tiny import build_tiny_model, count_parameters
        from feedbackrl.train.config import RunConfig
        from feedbackrl.train.recipe import build_task

        overrides = list(set_ or [])
        if config is None:
            overrides.append(f"task={task}")
        cfg = load_config(config, RunConfig, overrides)
        t = build_task(cfg)
        extra = t.extra_tokens() if hasattr(t, "extra_tokens") else ()
        build_tiny_model(out, t.corpus(), extra_tokens=extra, config=cfg.model.tiny)
        from transformers import AutoModelForCausalLM

        n = count_parameters(AutoModelForCausalLM.from_pretrained(out))
        typer.echo(f"wrote tiny model ({n / 1e6:.2f} M parameters) to {out}")

    @app.command()
    def demo(
        out_dir: Path = typer.Option(Path("runs"), help="Where runs are written."),
        fresh: bool = typer.Option(True, help="Start over rather than resume."),
        task: str = typer.Option("shop", help="shop (the main demo) or arithmetic."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a key of the shop config: --set steps=60"),
    ):
        """The main job on the embedded default (see README)."""
        from feedbackrl.commands.demo import run_demo

        run_demo(out_dir, fresh=fresh, task=task, overrides=set_)
