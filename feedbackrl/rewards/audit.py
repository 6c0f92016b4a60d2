"""The audit trail: every scored rollout, kept on disk with its reward details.

Layout: `runs/<name>/rollouts.parquet/` is a *directory* (a Parquet dataset) holding one file
per training step, `step-00000012.parquet`. Why not one growing file: Parquet cannot be
appended to, and a writer kept open for the whole run loses everything if the process dies
before it writes the footer. One file per step costs nothing to read back (DuckDB and pyarrow
read the directory as one table) and a crash loses at most the step being written:

- each file is written to a hidden temporary name, fsynced, then renamed into place, so a
  reader never sees half a file; a leftover `.step-*.tmp` from a crash is ignored;
- writing a step that already has a file replaces it: a run resumed from a checkpoint
  replays the steps after the checkpoint, and their rows must not appear twice.

Columns: step, index (position in the step's batch), prompt, completion, reward (null when
the reward errored), details (JSON text), error, group_id, metadata (JSON text).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Sequence

from feedbackrl.sample import Sample

ROLLOUTS_DIRNAME = "rollouts.parquet"
_STEP_FILE = re.compile(r"^step-(\d+)\.parquet$")


def _jsonable(value: Any) -> Any:
    # Details may hold Decimals (rules), numpy or torch values, sets; keep them readable.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy / torch, scalars included
        return value.tolist()
    return str(value)


def to_json(value: Any) -> str:
    return json.dumps(value, default=_jsonable, ensure_ascii=False)


def _schema():
    import pyarrow as pa

    return pa.schema([
        ("step", pa.int64()),
        ("index", pa.int64()),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("reward", pa.float64()),
        ("details", pa.string()),
        ("error", pa.string()),
        ("group_id", pa.int64()),
        ("metadata", pa.string()),
    ])


def write_rollouts(path: str | Path, samples: Sequence[Sample], step: int) -> Path:
    """Write the scored samples of one step to `path/step-<step>.parquet`; return that file.

    `path` is the dataset directory (usually `runs/<name>/rollouts.parquet`), created if
    missing. Rewriting a step replaces its file (see the module docstring).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root}: exists and is not a rollouts directory")
    root.mkdir(parents=True, exist_ok=True)
    columns = {
        "step": [int(step)] * len(samples),
        "index": list(range(len(samples))),
        "prompt": [s.prompt for s in samples],
        "completion": [s.completion for s in samples],
        "reward": [None if s.error is not None or s.reward is None else float(s.reward) for s in samples],
        "details": [to_json(s.details or {}) for s in samples],
        "error": [s.error for s in samples],
        "group_id": [int(s.group_id) for s in samples],
        "metadata": [to_json(s.metadata or {}) for s in samples],
    }
    table = pa.Table.from_pydict(columns, schema=_schema())
    final = root / f"step-{int(step):08d}.parquet"
    tmp = root / f".{final.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def rollouts_dir(path: str | Path) -> Path:
    """The rollouts directory for a run directory or the rollouts directory itself."""
    path = Path(path)
    if (path / ROLLOUTS_DIRNAME).exists():
        return path / ROLLOUTS_DIRNAME
    return path


def step_files(path: str | Path) -> list[Path]:
    root = rollouts_dir(path)
    if root.is_file() and root.suffix == ".parquet":
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{path}: no such run or rollouts directory")
    files = sorted((p for p in root.iterdir() if _STEP_FILE.match(p.name)), key=lambda p: int(_STEP_FILE.match(p.name).group(1)))
    if not files:
        raise FileNotFoundError(f"{path}: no rollouts found (expected {root}/step-*.parquet)")
    return files


def read_rollouts(path: str | Path, steps: Sequence[int] | None = None):
    """All rollouts as one pyarrow Table ordered by (step, index).

    `path`: a run directory, its `rollouts.parquet/` directory, or one step file.
    `steps`: keep only these steps (read only their files).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = step_files(path)
    if steps is not None:
        wanted = {int(s) for s in steps}
        files = [f for f in files if _STEP_FILE.match(f.name) and int(_STEP_FILE.match(f.name).group(1)) in wanted]
        if not files:
            return _schema().empty_table()
    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    return table.sort_by([("step", "ascending"), ("index", "ascending")])


# ---------------------------------------------------------------------- summaries for `inspect`

def distribution(values: Sequence[float], bins: int = 10) -> dict[str, Any]:
    """count, mean, std (population), min, p25, p50, p75, max and a histogram of `values`.

    Quantiles interpolate linearly between order statistics (numpy's default). The
    histogram is [(low, high, count), ...]: `bins` equal-width bins from min to max, or one
    (v, v, count) row per value when there are at most `bins` distinct values.
    """
    finite = sorted(v for v in values if v is not None and math.isfinite(v))
    n = len(finite)
    if n == 0:
        return {"count": 0}
    mean = sum(finite) / n

    def quantile(q: float) -> float:
        pos = q * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return finite[lo] + (finite[hi] - finite[lo]) * (pos - lo)

    lo, hi = finite[0], finite[-1]
    distinct = Counter(finite)
    if len(distinct) <= bins:
        # Pass/fail and other few-valued scores: one row per value reads better than empty bins.
        histogram = [(v, v, c) for v, c in sorted(distinct.items())]
    else:
        width = (hi - lo) / bins
        counts = [0] * bins
        for v in finite:
            counts[min(int((v - lo) / width), bins - 1)] += 1
        histogram = [(lo + i * width, lo + (i + 1) * width, c) for i, c in enumerate(counts)]
    return {
        "count": n,
        "mean": mean,
        "std": math.sqrt(sum((v - mean) ** 2 for v in finite) / n),
        "min": lo,
        "p25": quantile(0.25),
        "p50": quantile(0.5),
        "p75": quantile(0.75),
        "max": hi,
        "histogram": histogram,
    }


def error_kind(error: str) -> str:
    """Group errors by their text with numbers blanked: "took 5.0s" and "took 7.2s" are one kind."""
    return re.sub(r"\d+(?:\.\d+)?", "N", error.strip().splitlines()[0])[:80] if error.strip() else "(empty)"


def summarize_rollouts(rows: Sequence[dict]) -> dict[str, Any]:
    """What `feedbackrl rewards inspect` shows, computed from rows of `read_rollouts(...).to_pylist()`.

    Returns: rows, steps (first, last), reward (distribution), components {name: distribution}
    (when details hold a CombinedReward's `components`), gate_failures {name: count},
    errors (count), error_kinds {kind: count}.
    """
    components: dict[str, list[float]] = {}
    gate_failures: Counter = Counter()
    for row in rows:
        details = _details(row)
        for name, value in (details.get("components") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                components.setdefault(name, []).append(float(value))
        for name in details.get("gates_failed") or []:
            gate_failures[name] += 1
    errors = [row["error"] for row in rows if row.get("error")]
    steps = [row["step"] for row in rows]
    return {
        "rows": len(rows),
        "steps": (min(steps), max(steps)) if steps else None,
        "reward": distribution([row["reward"] for row in rows if row.get("reward") is not None]),
        "components": {name: distribution(values) for name, values in components.items()},
        "gate_failures": dict(gate_failures),
        "errors": len(errors),
        "error_kinds": dict(Counter(error_kind(e) for e in errors).most_common()),
    }


def compact(value: Any) -> Any:
    """`value` without empty containers and None values, for showing details briefly."""
    if isinstance(value, dict):
        kept = {k: compact(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [], "")}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def _details(row: dict) -> dict:
    try:
        details = json.loads(row.get("details") or "{}")
    except json.JSONDecodeError:
        return {}
    return details if isinstance(details, dict) else {}


def extremes(rows: Sequence[dict], top: int) -> tuple[list[dict], list[dict]]:
    """(worst, best): the `top` scored rows with the lowest and the highest reward.

    Ties keep the earlier row first so the output is stable from one call to the next.
    """
    scored = [r for r in rows if r.get("reward") is not None]
    ordered = sorted(scored, key=lambda r: (r["reward"], r["step"], r["index"]))
    worst = ordered[:top]
    best = sorted(scored, key=lambda r: (-r["reward"], r["step"], r["index"]))[:top]
    return worst, best
