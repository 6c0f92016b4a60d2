"""`feedbackrl rewards ...` commands: look into a run's scored rollouts, list the rewards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from feedbackrl.commands.errors import UserError

app = typer.Typer(no_args_is_help=True)

_BAR_WIDTH = 30


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@app.command("inspect")
def inspect(
    run_dir: Path = typer.Argument(..., help="A run directory (holding rollouts.parquet/) or the rollouts directory itself."),
    top: int = typer.Option(5, "--top", help="How many of the worst and of the best examples to show."),
    step: Optional[list[int]] = typer.Option(None, "--step", help="Only these steps (repeat the flag for several)."),
    width: int = typer.Option(300, help="Characters of prompt, completion and details shown per example."),
) -> None:
    """Score distribution (overall and per component), errors, and the worst and best examples."""
    from rich.console import Console
    from rich.table import Table

    from feedbackrl.rewards.audit import compact, extremes, read_rollouts, summarize_rollouts

    if top < 0:
        raise UserError("--top must be >= 0")
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such run directory")
    try:
        rows = read_rollouts(run_dir, steps=step).to_pylist()
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - a corrupt file is the user's data, not our bug
        raise UserError(f"{run_dir}: cannot read rollouts ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not rows:
        raise UserError(f"{run_dir}: no rollouts for steps {step}")
    summary = summarize_rollouts(rows)
    console = Console()

    first, last = summary["steps"]
    console.print(f"[bold]{run_dir}[/bold]: {summary['rows']} rollouts, steps {first}–{last}")

    stats = Table(title="score distribution", title_justify="left")
    for col in ("score", "count", "mean", "std", "min", "p25", "p50", "p75", "max"):
        stats.add_column(col, justify="left" if col == "score" else "right")
    dists = {"reward": summary["reward"], **summary["components"]}
    for name, d in dists.items():
        if d["count"] == 0:
            stats.add_row(name, "0", *["-"] * 7)
            continue
        stats.add_row(name, str(d["count"]), *(_fmt(d[k]) for k in ("mean", "std", "min", "p25", "p50", "p75", "max")))
    console.print(stats)

    for name, d in dists.items():
        if d["count"] == 0:
            continue
        console.print(f"[bold]{name}[/bold] histogram")
        peak = max(c for _, _, c in d["histogram"]) or 1
        for low, high, count in d["histogram"]:
            bar = "█" * round(_BAR_WIDTH * count / peak)
            label = f"{low:>9.4g}" + " " * 11 if low == high else f"{low:>9.4g} – {high:<9.4g}"
            console.print(f"  {label} {bar:<{_BAR_WIDTH}} {count}", highlight=False)

    if summary["gate_failures"]:
        console.print("gate failures: " + ", ".join(f"{k} {v}" for k, v in summary["gate_failures"].items()))
    console.print(f"errors: {summary['errors']} of {summary['rows']}")
    if summary["error_kinds"]:
        errors = Table(show_header=True)
        errors.add_column("error kind")
        errors.add_column("count", justify="right")
        for kind, count in summary["error_kinds"].items():
            errors.add_row(kind, str(count))
        console.print(errors)

    worst, best = extremes(rows, top)
    for title, examples in (("worst", worst), ("best", best)):
        if not examples:
            continue
        table = Table(title=f"{title} {len(examples)}", title_justify="left", show_lines=True)
        for col in ("step", "score", "prompt", "completion", "details"):
            table.add_column(col, overflow="fold")
        for row in examples:
            details = compact(json.loads(row["details"] or "{}"))
            table.add_row(str(row["step"]), _fmt(row["reward"]), _clip(row["prompt"], width),
                          _clip(row["completion"], width), _clip(json.dumps(details, ensure_ascii=False), width))
        console.print(table)


@app.command("list")
def list_rewards() -> None:
    """The registered reward names, as configs and `get_reward` accept them."""
    from feedbackrl.rewards.registry import REWARDS

    for name, factory in sorted(REWARDS.items()):
        where = factory if isinstance(factory, str) else f"{factory.__module__}:{getattr(factory, '__qualname__', factory)}"
        typer.echo(f"{name:<16} {where}")
