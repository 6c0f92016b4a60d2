"""`feedbackrl train-rm CONFIG [--set key=value ...]`: train a Bradley-Terry reward model."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("train-rm")
    def train_rm(
        config: Path = typer.Argument(..., help="YAML config (see configs/rm_tiny.yaml, configs/rm_minilm.yaml)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key: --set epochs=2"),
    ) -> None:
        """Train a scalar reward head on preference pairs; report held-out pairwise accuracy."""
        from feedbackrl.commands.errors import UserError
        from feedbackrl.config import load_config
        from feedbackrl.train.reward_model import PreferenceDataError, RewardModelConfig, train_reward_model

        cfg = load_config(config, RewardModelConfig, set_ or [])
        try:
            summary = train_reward_model(cfg, show_progress=True)
        except PreferenceDataError as e:
            raise UserError(str(e)) from None
        pairs = f"{summary['train_pairs']} train / {summary['held_out_pairs']} held-out pairs"
        if summary["skipped_rows"]:
            pairs += f", {summary['skipped_rows']} bad rows skipped"
        typer.echo(f"{pairs}, {summary['steps']} steps, {summary['wall_seconds']:.0f} s")
        for kind, accuracy in summary["held_out_accuracy_by_kind"].items():
            typer.echo(f"  held-out accuracy [{kind}]: {accuracy:.3f}")
        if summary["held_out_accuracy_by_violation"]:
            typer.echo("  by violation: " + ", ".join(f"{v} {a:.2f}" for v, a in summary["held_out_accuracy_by_violation"].items()))
        typer.echo(f"held-out pairwise accuracy {summary['held_out_accuracy']:.3f} (train {summary['train_accuracy']:.3f})")
        typer.echo(f"model: {summary['model_dir']}  summary: {cfg.run_dir / 'summary.json'}")
