"""`feedbackrl logs ...`: export the live event log, convert logs to training data, show the schema."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from feedbackrl.commands.errors import UserError

app = typer.Typer(no_args_is_help=True)


class ConvertTarget(str, Enum):
    tuples = "tuples"
    pairs = "pairs"
    labels = "labels"


@app.command("export")
def export(
    db: Path = typer.Argument(..., help="SQLite event log written by the service."),
    out: Path = typer.Option(..., "--out", help="Parquet file to write (interaction schema)."),
    batch_rows: int = typer.Option(10_000, help="Impressions per chunk (and per Parquet row group)."),
) -> None:
    """Export every impression and its events to one Parquet file, streamed in chunks."""
    from feedbackrl.store.event_log import EventLog
    from feedbackrl.store.schema import LogFormatError

    if not db.exists():
        raise UserError(f"{db}: no such event log")
    if batch_rows < 1:
        raise UserError("--batch-rows must be >= 1")
    try:
        with EventLog(db) as log:
            rows = log.export_parquet(out, batch_rows=batch_rows)
    except LogFormatError as e:
        raise UserError(str(e)) from None
    typer.echo(f"wrote {rows} impressions to {out}")


@app.command("convert")
def convert(
    logs: Path = typer.Argument(..., help="Parquet interaction log (a file or a folder of files)."),
    to: ConvertTarget = typer.Option(..., "--to", help="tuples (reward regression), pairs (DPO), labels (KTO)."),
    out: Path = typer.Option(..., "--out", help="Output file: .parquet or .jsonl."),
    click_weight: float = typer.Option(1.0, help="Reward per click."),
    cart_weight: float = typer.Option(2.0, help="Reward per add-to-cart."),
    purchase_weight: float = typer.Option(4.0, help="Reward per purchase."),
    min_reward: float = typer.Option(None, help="labels: a list is desirable at this reward or more (default: one click)."),
    batch_size: int = typer.Option(8192, help="Log rows read at a time."),
) -> None:
    """Turn logged interactions into (prompt, response, reward) tuples, preference pairs or labels."""
    from feedbackrl.store import convert as conv
    from feedbackrl.store.interaction_files import iter_interaction_records
    from feedbackrl.store.schema import LogFormatError

    if out.suffix.lower() not in (".parquet", ".jsonl"):
        raise UserError(f"{out}: --out must end in .parquet or .jsonl")
    weights = conv.RewardWeights(click=click_weight, add_to_cart=cart_weight, purchase=purchase_weight)
    interactions = iter_interaction_records(logs, batch_size=batch_size)
    if to is ConvertTarget.tuples:
        records = conv.to_tuples(interactions, weights)
    elif to is ConvertTarget.pairs:
        records = conv.to_preference_pairs(interactions)
    else:
        records = conv.to_labels(interactions, weights, min_reward)
    try:
        count = conv.write_records(out, records)
    except LogFormatError as e:
        raise UserError(str(e)) from None
    typer.echo(f"wrote {count} {to.value} to {out}")


@app.command("schema")
def schema() -> None:
    """Print the interaction schema: column, type, meaning."""
    from feedbackrl.store.schema import SCHEMA_DOC

    width = max(len(name) for name, _, _ in SCHEMA_DOC)
    for name, dtype, meaning in SCHEMA_DOC:
        typer.echo(f"{name:<{width}}  {dtype:<22}  {meaning}")


@app.command("summary")
def summary(logs: Path = typer.Argument(..., help="Parquet interaction log.")) -> None:
    """Impressions, click-through rate per position and per logging policy (DuckDB, streamed)."""
    from feedbackrl.store.log_summary import summarize_interactions
    from feedbackrl.store.schema import LogFormatError

    try:
        result = summarize_interactions(logs)
    except LogFormatError as e:
        raise UserError(str(e)) from None
    typer.echo(f"impressions: {result['impressions']}")
    typer.echo("CTR by position: " + ", ".join(f"{k}: {v:.4f}" for k, v in result["ctr_by_position"].items()))
    for version, (n, ctr) in result["by_policy_version"].items():
        typer.echo(f"policy {version}: {n} impressions, CTR {ctr:.4f}")
