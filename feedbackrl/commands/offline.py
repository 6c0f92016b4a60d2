"""`feedbackrl train-offline CONFIG [--set key=value ...]`: DPO, IPO, AWR, RWR or off-policy
gradient on logged data, no generation (see configs/offline_*.yaml and docs/offline.md).
`feedbackrl train-offline-online CONFIG`: the shop's logs -> offline training -> online GRPO
(configs/shop_offline_then_online.yaml)."""

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

    @app.command("train-offline-online")
    def train_offline_online_command(
        config: Path = typer.Argument(..., help="YAML config (configs/shop_offline_then_online.yaml)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="Override a key: --set online.replay.fraction=0.25"),
        fresh: bool = typer.Option(False, help="Start over instead of resuming the stages already done."),
        compare: bool = typer.Option(False, help="Also train online only (same budget, from the run's behaviour-cloned "
                                                 "policy) and chart both learning curves in report.html."),
    ) -> None:
        """Shop logs -> offline training -> online GRPO from the offline policy; writes report.html."""
        from feedbackrl.config import load_config
        from feedbackrl.train.offline_then_online import (
            OfflineThenOnlineConfig, compare_with_online_only, run_offline_then_online,
        )

        # --compare keeps the behaviour-cloned policy: online only starts from it
        cfg = load_config(config, OfflineThenOnlineConfig, (set_ or []) + (["offline.warm_start.save=true"] if compare else []))
        r = run_offline_then_online(cfg, fresh=fresh, log=typer.echo)
        c, refs = r["curve"], r["reference_ctr"]
        typer.echo(f"held-out CTR: logger {refs['logger']:.3f}, BM25 {refs['bm25']:.3f}; offline policy {c['ctr'][0]:.3f} "
                   f"({c['ctr'][0] / refs['logger']:.2f}x the logger); after {c['interactions'][-1]:,} online "
                   f"sessions {c['ctr'][-1]:.3f}  ({r['wall_seconds']:.0f} s)")
        if compare:
            cmp = compare_with_online_only(cfg, r, log=typer.echo)
            only, oto = cmp["curves"]["online only (from the logger's imitation)"], cmp["curves"]["offline then online"]
            n = cmp["interactions_to_target"]["offline then online"]
            typer.echo(f"online only: {only['ctr'][0]:.3f} -> {only['ctr'][-1]:.3f} (the target); offline then online reaches "
                       f"it after {'never' if n is None else f'{n:,}'} of {cmp['online_budget_interactions']:,} sessions")
        typer.echo(f"report: {cfg.run_dir / 'report.html'}  summary: {cfg.run_dir / 'summary.json'}")
