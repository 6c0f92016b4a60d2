"""`feedbackrl shop ...` commands: check the shop data, simulate days of traffic against a ranker.

`--policy` takes a baseline name (bm25, popularity, oracle, random, pl-bm25:T), a trained
checkpoint directory (or a run directory: its latest checkpoint; greedy decoding constrained to
the day's catalog, see feedbackrl/train/shop_ranking.py), several of them comma-separated, or
`package.module:factory`, where `factory(world)` returns any object with
`rank(query, segment, day, k, rng) -> RankedList` (see feedbackrl/tasks/shop/baselines.py):
that is how a trained policy is simulated without changing this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from feedbackrl.commands.errors import UserError

app = typer.Typer(no_args_is_help=True)


def _load_config(config: Path | None, overrides: list[str] | None):
    from feedbackrl.config import load_config
    from feedbackrl.tasks.shop.traffic import ShopSimulationConfig

    return load_config(config, ShopSimulationConfig, overrides)


def _checkpoint_dir(policy: str) -> Path | None:
    """A model or checkpoint directory (config.json inside), or a run directory whose latest
    checkpoint is used; None when `policy` is not a directory."""
    path = Path(policy)
    if not path.is_dir():
        return None
    if (path / "config.json").exists() and any(path.glob("*.safetensors")):
        return path
    from feedbackrl.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(path)
    if latest is None:
        raise UserError(f"shop simulate: --policy {policy}: a directory but neither a model (config.json and "
                        "weights) nor a run with checkpoints")
    return latest


def _prompt_settings(checkpoint: Path) -> dict:
    """How the checkpoint's run wrote prompts (shop.prompt_candidates and shop.similar_query in
    runs/<name>/config.json); the query alone for a model directory outside a run."""
    run_config = checkpoint.parent.parent / "config.json" if checkpoint.parent.name == "checkpoints" else None
    if run_config is None or not run_config.exists():
        return {"candidates": 0, "similar_query": ""}
    shop = json.loads(run_config.read_text(encoding="utf-8")).get("shop") or {}
    return {"candidates": int(shop.get("prompt_candidates", 0) or 0),
            "similar_query": str(shop.get("similar_query", "") or "")}


def resolve_ranker(policy: str, world, cfg):
    """A baseline by name, a checkpoint (or run) directory ranking greedily, or `module:factory`
    called with the world."""
    import importlib

    import numpy as np

    from feedbackrl.tasks.shop.baselines import BASELINE_NAMES, PlackettLuceLogger, make_baseline
    from feedbackrl.tasks.shop.traffic import TrafficConfig, simulate_traffic

    checkpoint = _checkpoint_dir(policy)
    if checkpoint is not None:
        from feedbackrl.train.shop_ranking import PolicyRanker

        return PolicyRanker(checkpoint, world, name=policy, **_prompt_settings(checkpoint))
    if ":" in policy and not policy.startswith("pl-bm25"):
        module_name, _, attr = policy.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise UserError(f"shop simulate: --policy {policy}: cannot import ({e})") from None
        ranker = factory(world)
        if not callable(getattr(ranker, "rank", None)):
            raise UserError(f"shop simulate: --policy {policy}: {type(ranker).__name__} has no rank(query, segment, day, k, rng)")
        return ranker
    history = ()
    if policy == "popularity" and cfg.popularity_history_days > 0:
        t = cfg.traffic
        # The history is before the simulation: every history session happens on day 0's catalog.
        pre = TrafficConfig(days=1, start_day=t.start_day,
                            sessions_per_day=cfg.popularity_history_days * t.sessions_per_day,
                            k=t.k, seed=t.seed, shoppers=t.shoppers)
        logger = PlackettLuceLogger(world, cfg.logging_temperature)
        history = simulate_traffic(logger, world, pre, np.random.default_rng([t.seed, 1]))
    try:
        return make_baseline(policy, world, history, cfg.marginal_samples)
    except ValueError as e:
        raise UserError(f"shop simulate: --policy: {e}; or give module:factory "
                        f"(known baselines: {', '.join(BASELINE_NAMES)})") from None


def _report(policy: str, records, world) -> dict:
    from feedbackrl.tasks.shop.metrics import days_to_top3, summarize, summarize_by

    return {
        "policy": policy,
        "overall": summarize(records),
        "per_segment": summarize_by(records, lambda r: r.segment),
        "per_intent": summarize_by(records, lambda r: r.intent_id),
        "per_day": summarize_by(records, lambda r: r.day),
        "days_to_top3": days_to_top3(records, world),
    }


def _print_tables(reports: list[dict], world) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))  # the table needs ~110 columns
    table = Table(title="Simulated shop traffic")
    for col in ("policy", "scope", "sessions", "ctr", "≥1 click", "cart/sess", "conversion", "revenue/sess", "ndcg@5"):
        table.add_column(col, justify="left" if col in ("policy", "scope") else "right")
    for rep in reports:
        rows = [("overall", rep["overall"])] + list(rep["per_segment"].items())
        for scope, m in rows:
            table.add_row(rep["policy"], scope, str(m["sessions"]), f"{m['ctr']:.3f}", f"{m['sessions_with_click']:.3f}",
                          f"{m['add_to_cart_rate']:.3f}", f"{m['conversion']:.3f}",
                          f"{m['revenue_per_session']:.1f}", f"{m['ndcg@5']:.3f}")
        table.add_section()
    console.print(table)
    for rep in reports:
        for sku, per_intent in rep["days_to_top3"].items():
            title = world.catalog.by_sku[sku].title
            parts = [f"{iid}: {'never' if d is None else f'{d} d'}" for iid, d in per_intent.items()]
            console.print(f"{rep['policy']}: {title} ({sku}) launched day {world.catalog.by_sku[sku].launch_day}; "
                          f"days to top 3: {', '.join(parts) or 'no intent has it in its ideal top 3'}")


@app.command("simulate")
def simulate(
    policy: str = typer.Option("bm25", help="bm25, popularity, oracle, random, pl-bm25:T, a checkpoint or run directory, "
                               "a comma-separated list, or module:factory."),
    days: int = typer.Option(None, help="Simulated days (default 7)."),
    seed: int = typer.Option(None, help="Seed of the shoppers and of any randomised ranker (default 0)."),
    sessions_per_day: int = typer.Option(None, "--sessions-per-day", help="Searches per day (default 300)."),
    k: int = typer.Option(None, help="Items shown per search (default 5)."),
    catalog: Path = typer.Option(None, help="Catalog JSON (default: bundled)."),
    intents: Path = typer.Option(None, help="Intents JSON (default: bundled)."),
    config: Path = typer.Option(None, help="YAML with ShopSimulationConfig fields (traffic.shoppers.bot_rate, ...)."),
    overrides: list[str] = typer.Option(None, "--set", help="key=value override, e.g. traffic.shoppers.model=cascade."),
    out: Path = typer.Option(None, help="Write all metrics (overall, per segment, intent, day; launches) as JSON."),
    log: Path = typer.Option(None, help="Also write the sessions as a Parquet interaction log (one policy only)."),
) -> None:
    """Simulate shoppers searching for DAYS days against a ranker; print and save the metrics."""
    import numpy as np

    from feedbackrl.config import to_dict
    from feedbackrl.tasks.shop.traffic import simulate_traffic
    from feedbackrl.tasks.shop.world import load_shop_world

    extra = [f"traffic.{name}={value}" for name, value in
             (("days", days), ("seed", seed), ("sessions_per_day", sessions_per_day), ("k", k)) if value is not None]
    extra += [f"{name}={value}" for name, value in (("catalog", catalog), ("intents", intents)) if value is not None]
    cfg = _load_config(config, list(overrides or []) + extra)
    world = load_shop_world(cfg.catalog, cfg.intents, cfg.festival_start_day)
    policies = [p.strip() for p in policy.split(",") if p.strip()]
    if not policies:
        raise UserError("shop simulate: --policy is empty")
    if log is not None and len(policies) != 1:
        raise UserError("shop simulate: --log needs exactly one --policy")
    reports = []
    for name in policies:
        ranker = resolve_ranker(name, world, cfg)
        # Every policy meets the same shoppers' intents and queries: one seed per run, not per policy.
        records = simulate_traffic(ranker, world, cfg.traffic, np.random.default_rng(cfg.traffic.seed))
        reports.append(_report(name, records, world))
        if log is not None:
            from feedbackrl.store.interaction_files import write_interactions
            from feedbackrl.tasks.shop.session_log import session_interactions

            n = write_interactions(log, session_interactions(records, prefix=name))
            typer.echo(f"wrote {n} interactions to {log}")
    _print_tables(reports, world)
    if out is not None:
        payload = {"config": to_dict(cfg), "events": [e.__dict__ for e in world.calendar.events()],
                   "reports": reports}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=1, default=str) + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")


@app.command("check")
def check(
    catalog: Path = typer.Option(None, help="Catalog JSON (default: bundled)."),
    intents: Path = typer.Option(None, help="Intents JSON (default: bundled)."),
) -> None:
    """Check a catalog and intents file against the schema; print what they hold."""
    from feedbackrl.tasks.shop.world import load_shop_world

    world = load_shop_world(catalog, intents)
    cat = world.catalog
    n_train = sum(len(it.train_phrasings) for it in world.intents)
    n_eval = sum(len(it.eval_phrasings) for it in world.intents)
    typer.echo(f"{cat.source}: {len(cat)} products in {len(cat.categories())} categories, "
               f"{len(cat.segments)} segments, {len(world.calendar.launches())} launched later")
    typer.echo(f"intents: {len(world.intents)} ({n_train} training and {n_eval} held-out phrasings)")
    for e in world.calendar.events():
        typer.echo(f"day {e.day}: {e.description}")


@app.command("table")
def table(
    run: Path = typer.Argument(..., help="A shop demo run directory (runs/<name>) or just its name under runs/."),
) -> None:
    """Print a shop run's scenario table: key items' ranks under BM25 and after training, and the CTR lift."""
    from rich.console import Console

    from feedbackrl.report import scenario_table

    run_dir = run if run.is_dir() or run.is_absolute() else Path("runs") / run
    path = run_dir / "scenarios.json"
    if not path.exists():
        raise UserError(f"shop table: {path}: not found; run `feedbackrl demo` (or the shop demo recipe) first")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"shop table: {path}: not JSON ({e})") from None
    console = Console(width=max(Console().width, 130))
    console.print(scenario_table(payload))
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        s = json.loads(summary_path.read_text(encoding="utf-8"))
        f6 = s.get("fold6_days_to_top3")
        console.print(f"held-out CTR {s['ctr_vs_bm25']:.2f}x BM25, {s['ctr_vs_oracle']:.0%} of the oracle; "
                      f"launch in its intents' top 3 after {'never' if f6 is None else f'{f6} day(s)'}; "
                      f"{s.get('steps')} steps, {s.get('wall_seconds', 0):.0f}s")
