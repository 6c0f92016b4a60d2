"""Run reports: matplotlib figures embedded as base64 PNGs in one self-contained HTML file, so
a report can be mailed or opened from a CI artefact without the run directory beside it.

`shop_report_html` draws the shop demo's story: CTR and conversion over simulated days with
BM25 and the oracle as reference lines and the calendar's events marked, then reward and KL
per training step, then the scenario table.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Sequence


def _figure_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def day_curve_png(metric: str, curves: dict[str, dict], events: Sequence[dict], title: str) -> str:
    """`curves`: name -> {"days": [...], "values": [...], "style": "-" | "--"}; `events`: dicts
    with `day`, `kind` ("launch" / "festival" / ...) and `description`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, c in curves.items():
        ax.plot(c["days"], c["values"], c.get("style", "-"), marker="o" if c.get("style", "-") == "-" else None,
                label=name, color=c.get("color"))
    for e in events:
        if e.get("kind") == "launch":
            ax.axvline(e["day"], color="tab:red", linestyle=":", linewidth=1.2)
            ax.annotate(e["description"], (e["day"], 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                        rotation=90, va="top", ha="right", color="tab:red")
        elif "end_day" in e:
            ax.axvspan(e["day"] - 0.5, e["end_day"] - 0.5, color="tab:orange", alpha=0.12, label=e["description"])
    ax.set_xlabel("simulated day")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _figure_png(fig)


def step_curve_png(rows: Sequence[dict], keys: Sequence[str], title: str, day_starts: Sequence[int] = ()) -> str:
    """One line per key of the per-step `rows` (metrics.jsonl lines); vertical ticks at `day_starts`."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if pts:
            ax.plot(*zip(*pts), linewidth=1)
        for s in day_starts:
            ax.axvline(s, color="grey", linewidth=0.5, alpha=0.5)
        ax.set_xlabel("training step")
        ax.set_title(key, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _figure_png(fig)


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(png: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def shop_report_html(summary: dict, days: dict, scenarios: list[dict], metrics_rows: Sequence[dict]) -> str:
    """The shop demo's report. `days` is what the demo writes to days.json: per curve name
    ("policy", "bm25", "oracle") {"days": [...], metric: [...]}, and "events"."""
    events = days.get("events", [])
    styles = {"policy": ("-", "tab:blue"), "bm25": ("--", "tab:grey"), "oracle": ("--", "tab:green")}
    figs = []
    for metric in ("ctr", "conversion"):
        curves = {name: {"days": c["days"], "values": c[metric], "style": styles[name][0], "color": styles[name][1]}
                  for name, c in days["curves"].items() if metric in c}
        figs.append(_img(day_curve_png(metric, curves, events, f"held-out {metric} by simulated day"), metric))
    spd = summary.get("steps_per_day") or 0
    starts = list(range(spd, summary.get("steps", 0), spd)) if spd else []
    figs.append(_img(step_curve_png(metrics_rows, ["reward/mean", "kl"], "training (GRPO)", starts), "reward and KL"))
    headline = [
        ("held-out CTR: policy / BM25", f"{summary.get('ctr_vs_bm25', float('nan')):.2f}x"),
        ("held-out CTR: policy / oracle", f"{summary.get('ctr_vs_oracle', float('nan')):.0%}"),
        ("Fold6 days to top 3", summary.get("fold6_days_to_top3")),
        ("gaming: S23 Ultra above A54 (whole order)", summary.get("gaming_s23_above_a54")),
        ("gaming: the same check on the oracle's order", summary.get("gaming_s23_above_a54_oracle")),
        ("gaming: S23 Ultra shown above A54 (top k)", summary.get("gaming_s23_above_a54_shown")),
        ("steps", summary.get("steps")),
        ("wall seconds", f"{summary.get('wall_seconds', 0):.0f}"),
    ]
    scen_rows = []
    for sc in scenarios:
        for it in sc["items"]:
            scen_rows.append([sc["name"], sc["query"], f"{it['title']} ({it['sku']})", it["bm25_rank"] or "-",
                              it["policy_rank"] or "-", f"{sc['bm25_ctr']:.2f} -> {sc['policy_ctr']:.2f}"])
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
             "img{max-width:100%;margin:0.5em 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(summary.get('name', 'run'))}</title>"
            f"<style>{style}</style></head><body><h1>feedbackrl shop demo: {html.escape(summary.get('name', ''))}</h1>"
            + _table(["figure", "value"], headline) + "".join(figs)
            + "<h2>Scenarios (rank: 1 = top, - = not shown)</h2>"
            + _table(["scenario", "query", "item", "BM25 rank", "policy rank", "expected CTR of the list"], scen_rows)
            + "</body></html>")


def scenario_table(payload: dict):
    """A rich Table of `scenarios.json`: each key item's rank under BM25 and under the policy,
    and the expected CTR of both lists for the scenario's query and its held-out phrasings."""
    from rich.table import Table

    table = Table(title=f"Scenarios on simulated day {payload.get('day')} (rank 1 = top, - = not shown)")
    for col in ("scenario", "query", "item", "utility", "BM25", "policy", "CTR BM25 -> policy"):
        table.add_column(col, justify="right" if col in ("utility", "BM25", "policy") else "left")
    for sc in payload["scenarios"]:
        for i, it in enumerate(sc["items"]):
            lift = f"{sc['bm25_ctr']:.2f} -> {sc['policy_ctr']:.2f}" if i == 0 else ""
            table.add_row(sc["name"] if i == 0 else "", sc["query"] if i == 0 else "", f"{it['title']} ({it['sku']})",
                          f"{it['utility']:.2f}", str(it["bm25_rank"] or "-"), str(it["policy_rank"] or "-"), lift)
        for lst in sc["lists"][1:]:
            table.add_row("", f"{lst['query']} (held out)" if lst["held_out"] else lst["query"], "", "", "", "",
                          f"{lst['bm25_ctr']:.2f} -> {lst['policy_ctr']:.2f}")
        if "above" in sc:
            a = sc["above"]
            ranks = a.get("full_order_ranks", {})
            where = "; ".join(f"{r['higher'] or '-'} vs {r['lower'] or '-'}" for r in ranks.values())
            table.add_row("", "", f"{a['higher']} above {a['lower']} in the whole order, every phrasing",
                          "", "", "", f"{'yes' if a['holds'] else 'no'}" + (f" (ranks {where})" if where else ""))
            if "shown_holds" in a:
                table.add_row("", "", f"... and shown in the top {len(a['oracle_list'])}", "", "", "",
                              "yes" if a["shown_holds"] else "no")
        table.add_section()
    o = payload.get("overall")
    if o:
        table.add_row("all held-out", "(CTR, sampled shoppers)", "", "", "", "",
                      f"{o['bm25_ctr']:.2f} -> {o['policy_ctr']:.2f} ({o['policy_ctr'] / max(o['bm25_ctr'], 1e-9):.2f}x; "
                      f"oracle {o['oracle_ctr']:.2f})")
    return table


def learning_curve_png(curves: dict[str, dict], references: dict[str, float], title: str,
                       target: float | None = None) -> str:
    """Held-out CTR against online interactions. `curves`: name -> {"interactions": [...],
    "ctr": [...]}; `references`: name -> a constant CTR (dashed); `target`: a dotted level."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    for name, c in curves.items():
        ax.plot(c["interactions"], c["ctr"], "-", marker="o", markersize=3, label=name)
    for (name, value), color in zip(references.items(), ("tab:grey", "tab:brown", "tab:green", "tab:olive")):
        ax.axhline(value, linestyle="--", linewidth=1, color=color, label=name)
    if target is not None:
        ax.axhline(target, linestyle=":", linewidth=1, color="black", label="target")
    ax.set_xlabel("online interactions (simulated shopper sessions)")
    ax.set_ylabel("held-out CTR (clicks per search)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _figure_png(fig)


def learning_report_html(title: str, curves: dict[str, dict], references: dict[str, float],
                         headline: Sequence[tuple[str, Any]], target: float | None = None) -> str:
    """A one-page report: a headline table, then every learning curve on one chart."""
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
             "img{max-width:100%;margin:0.5em 0}")
    fig = _img(learning_curve_png(curves, references, "held-out CTR vs online interactions", target), "learning curves")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            + _table(["figure", "value"], headline) + fig + "</body></html>")
