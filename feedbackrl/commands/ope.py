"""`feedbackrl ope`: off-policy evaluation of a target policy on logged interactions.

Two sources of logs: a Parquet interaction log of the shop (`--logs`, target `--policy`),
or the Open Bandit Dataset sample (`--obd`, target: the Thompson-sampling policy,
evaluated on the uniform-random policy's logs and compared with its own on-policy CTR).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from feedbackrl.commands.errors import UserError


def register(app: typer.Typer) -> None:
    app.command("ope")(ope)


def ope(
    logs: Path = typer.Option(None, "--logs", help="Parquet interaction log (file or folder)."),
    policy: str = typer.Option(
        None, "--policy",
        help="Target: bm25, popularity, oracle, random, pl-bm25:TEMPERATURE, or a checkpoint folder (shop logs);"
             " random or popularity (any logs).",
    ),
    obd: bool = typer.Option(False, "--obd", help="Evaluate Thompson sampling on the Open Bandit Dataset's random logs."),
    campaign: str = typer.Option("all", help="--obd: all, men or women."),
    bts_source: str = typer.Option("logged", help="--obd: BTS item-slot probabilities from 'logged', 'prior' or 'empirical'."),
    estimators: str = typer.Option("ips,snips,dm,dr,pbips", help="Comma-separated: ips, snips, dm, dr, pbips."),
    unit: str = typer.Option("position", help="position (item-position weights) or list (whole-list weights)."),
    bootstrap: int = typer.Option(200, help="Bootstrap resamples for confidence intervals (0: none)."),
    alpha: float = typer.Option(0.05, help="Two-sided level: 0.05 gives 95% intervals."),
    clip_max: float = typer.Option(None, help="Cap importance weights at this value."),
    seed: int = typer.Option(0, help="Seed of the bootstrap (and of any Monte Carlo)."),
    shop_config: Path = typer.Option(None, help="Shop YAML the logs came from (catalog, intents, festival); default: bundled shop."),
    target_samples: int = typer.Option(20_000, help="Monte Carlo draws per context for Plackett-Luce target marginals."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Estimate a target policy's click-through rate from logs: IPS, SNIPS, DM, DR, position-based IPS."""
    from feedbackrl.store.evaluation import LoggedRankings, OPEConfig, evaluate_policy
    from feedbackrl.store.schema import LogFormatError

    config = OPEConfig(
        estimators=tuple(e.strip() for e in estimators.split(",") if e.strip()),
        unit=unit, bootstrap_resamples=bootstrap, alpha=alpha, clip_max=clip_max, seed=seed,
    )
    try:
        config.validate()
    except ValueError as e:
        raise UserError(f"ope: {e}") from None
    if bootstrap < 0:
        raise UserError("ope: --bootstrap must be >= 0")
    if obd == (logs is not None):
        raise UserError("ope: give exactly one of --logs LOGS or --obd")

    extra_meta: dict = {}
    try:
        if obd:
            rankings, target, extra_meta = _obd_inputs(campaign, bts_source, seed)
        else:
            if not policy:
                raise UserError("ope: --policy is required with --logs")
            from feedbackrl.store.interaction_files import iter_interaction_records

            rankings = LoggedRankings.from_interactions(iter_interaction_records(logs), source=str(logs))
            target = _shop_target(policy, rankings, shop_config, seed, target_samples)
        report = evaluate_policy(rankings, target, config)
    except (LogFormatError, ValueError) as e:
        raise UserError(str(e)) from None
    report.meta.update(extra_meta)

    if as_json:
        typer.echo(json.dumps(report.to_json()))
        return
    _print_table(report)


def _obd_inputs(campaign: str, bts_source: str, seed: int):
    from feedbackrl.store.evaluation import LoggedRankings
    from feedbackrl.tasks import obp_logs

    if campaign not in obp_logs.CAMPAIGNS:
        raise UserError(f"ope: --campaign must be one of {', '.join(obp_logs.CAMPAIGNS)}")
    if bts_source not in ("logged", "prior", "empirical"):
        raise UserError("ope: --bts-source must be logged, prior or empirical")
    rankings = LoggedRankings.from_interactions(obp_logs.read_obd("random", campaign), source=f"obd random/{campaign}")
    target = obp_logs.ObdSlotPolicy(f"obd-bts-{bts_source}", obp_logs.bts_slot_probs(campaign, bts_source, seed=seed))
    ctr, stderr = obp_logs.on_policy_ctr("bts", campaign)
    return rankings, target, {"campaign": campaign, "bts_source": bts_source, "on_policy_ctr": ctr, "on_policy_ctr_stderr": stderr}


def _shop_target(policy: str, rankings, shop_config: Path | None, seed: int, target_samples: int):
    try:
        from feedbackrl.tasks.shop_target_policies import make_target_policy
    except ImportError as e:
        raise UserError(f"ope: shop target policies are unavailable ({e})") from None
    if target_samples < 1:
        raise UserError("ope: --target-samples must be >= 1")
    return make_target_policy(policy, rankings, shop_config=shop_config, seed=seed, num_samples=target_samples)


def _print_table(report) -> None:
    def fmt(x):
        return "-" if x is None else f"{x:.5f}"

    meta = report.meta
    typer.echo(f"target {meta['target']}: {meta['impressions']} impressions x {meta['positions']} positions,"
               f" unit={meta['unit']}, logged CTR {meta['logged_ctr']:.5f}")
    if "on_policy_ctr" in meta:
        typer.echo(f"on-policy CTR of the target (its own logs): {meta['on_policy_ctr']:.5f} ± {meta['on_policy_ctr_stderr']:.5f}")
    typer.echo(f"{'estimator':<10}{'estimate':>11}{'ci_low':>11}{'ci_high':>11}{'ess':>11}")
    for name, r in report.estimates.items():
        ess = "-" if r.ess is None else f"{r.ess:.1f}"
        typer.echo(f"{name:<10}{fmt(r.estimate):>11}{fmt(r.ci_low):>11}{fmt(r.ci_high):>11}{ess:>11}")
    for warning in report.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
