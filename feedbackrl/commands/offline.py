"""`feedbackrl train-offline CONFIG [--set key=value ...]`: DPO, IPO, AWR, RWR or off-policy
gradient on logged data, no generation (see configs/offline_*.yaml and docs/offline.md)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("train-offline")
    def train_offline_command(
        config: Path = typer.Argument(..., help="YAML config (configs/offline_dpo.yaml, offline_awr.yaml, offline_opg.yaml)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key: --set method=ipo"),
    ) -> None:
        """Train a policy from logged tuples or preference pairs; evaluate it when the config names a task."""
        from feedbackrl.commands.errors import UserError
        from feedbackrl.config import load_config
        from feedbackrl.train.offline import OfflineConfig, train_offline
        from feedbackrl.train.offline_data import OfflineDataError

        cfg = load_config(config, OfflineConfig, set_ or [])
        try:
            summary = train_offline(cfg, log=typer.echo)
        except OfflineDataError as e:
            raise UserError(str(e)) from None
        typer.echo(f"{summary['method']}: {summary['rows']} rows, {summary['steps']} steps, "
                   f"loss {summary['first_loss']:.4f} -> {summary['final_epoch_loss']:.4f} (last epoch mean), "
                   f"{summary['wall_seconds']:.0f} s")
        before, after = summary.get("eval_before"), summary.get("eval")
        if after:
            for key in sorted(after):
                if "/" not in key:
                    was = f"{before[key]:.4f} -> " if before and key in before else ""
                    typer.echo(f"  {key}: {was}{after[key]:.4f}")
        typer.echo(f"policy: {summary['checkpoint']}  summary: {Path(summary['run_dir']) / 'summary.json'}")
