"""Reading the offline loops' data: reward tuples and preference pairs from `feedbackrl logs convert`.

Files are Parquet or JSONL with the columns `feedbackrl.store.convert` writes:

- tuples: `prompt`, `response`, `reward`, and for the off-policy gradient the logging
  policy's propensity of the whole response, either `logged_logprob` (its natural log, what
  `convert` writes) or `propensity` (the probability itself, in (0, 1]); for per-item credit
  (`weighted.credit: item`) `item_rewards`, one number per item of the response (the response
  is its items separated by spaces);
- pairs: `prompt`, `chosen`, `rejected`.

Other columns are ignored. A missing file, a missing column or a bad value stops the run with
one line naming the file, the column and the row (`OfflineDataError`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch


class OfflineDataError(ValueError):
    """An offline data file or row is unusable; the message names the file and the row."""


@dataclass
class TupleData:
    """Logged (prompt, response, reward) tuples; `logged_logprobs` is None when the files carry no propensity."""

    prompts: list[str]
    responses: list[str]
    rewards: torch.Tensor  # [N] float64
    logged_logprobs: torch.Tensor | None  # [N] float64, log mu(response | prompt)
    # each row's per-item rewards (one per space-separated item of the response); None when
    # the files carry no `item_rewards` column
    item_rewards: list[list[float]] | None = None

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class PairData:
    prompts: list[str]
    chosen: list[str]
    rejected: list[str]

    def __len__(self) -> int:
        return len(self.prompts)


def read_records(path: str | Path) -> list[dict]:
    """All rows of one .parquet or .jsonl file as dicts."""
    path = Path(path)
    if not path.is_file():
        raise OfflineDataError(f"{path}: no such data file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise OfflineDataError(f"{path}: not a readable Parquet file ({e})") from None
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise OfflineDataError(f"{path}: row {number}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise OfflineDataError(f"{path}: row {number}: expected a JSON object")
            rows.append(row)
        return rows
    raise OfflineDataError(f"{path}: expected a .parquet or .jsonl file")


def _columns(rows: list[dict]) -> set[str]:
    # JSONL rows may differ; a column counts as present when any row has it.
    return set().union(*(r.keys() for r in rows)) if rows else set()


def _require(path: Path, rows: list[dict], needed: Sequence[str], what: str) -> None:
    if not rows:
        raise OfflineDataError(f"{path}: no rows")
    missing = [c for c in needed if c not in _columns(rows)]
    if missing:
        raise OfflineDataError(
            f"{path}: missing column {', '.join(map(repr, missing))} ({what} need {', '.join(needed)};"
            f" write them with `feedbackrl logs convert`)"
        )


def _text(path: Path, row: int, rows: list[dict], column: str, prefix: str) -> str:
    value = rows[row].get(column)
    if not isinstance(value, str):
        raise OfflineDataError(f"{path}: row {row + 1}: column {column!r} must be a string, got {value!r}")
    return prefix + value


def _number(path: Path, row: int, rows: list[dict], column: str) -> float:
    value = rows[row].get(column)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OfflineDataError(f"{path}: row {row + 1}: column {column!r} must be a finite number, got {value!r}")
    return float(value)


def _logged_logprob(path: Path, row: int, rows: list[dict], column: str) -> float:
    value = _number(path, row, rows, column)
    if column == "propensity":
        if not 0.0 < value <= 1.0:
            raise OfflineDataError(f"{path}: row {row + 1}: column 'propensity' must be in (0, 1], got {value!r}")
        return math.log(value)
    if value > 0.0:
        raise OfflineDataError(f"{path}: row {row + 1}: column 'logged_logprob' is a log-probability and must be <= 0, got {value!r}")
    return value


def _item_rewards(path: Path, row: int, rows: list[dict], response: str) -> list[float]:
    value = rows[row].get("item_rewards")
    items = response.split()
    if not isinstance(value, (list, tuple)) or len(value) != len(items):
        raise OfflineDataError(f"{path}: row {row + 1}: column 'item_rewards' must be a list of {len(items)} numbers "
                               f"(one per item of the response), got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise OfflineDataError(f"{path}: row {row + 1}: column 'item_rewards' must hold finite numbers, got {v!r}")
        out.append(float(v))
    return out


def load_tuples(paths: Sequence[str | Path], need_propensity: bool = False, completion_prefix: str = "",
                need_item_rewards: bool = False) -> TupleData:
    """Tuples from every file in `paths`. With `need_propensity`, every row must carry
    `logged_logprob` or `propensity` (the off-policy gradient cannot use a row without it);
    with `need_item_rewards`, every row must carry `item_rewards` (per-item credit).
    `completion_prefix` is put before each response so it reads as the policy writes it."""
    prompts, responses, rewards, logps, items = [], [], [], [], []
    for p in paths:
        path = Path(p)
        rows = read_records(path)
        _require(path, rows, ("prompt", "response", "reward"), "tuples")
        present = _columns(rows)
        column = "logged_logprob" if "logged_logprob" in present else "propensity" if "propensity" in present else None
        if need_propensity and column is None:
            raise OfflineDataError(
                f"{path}: missing column 'logged_logprob' (or 'propensity'): the off-policy gradient needs the logging policy's propensity"
            )
        for i in range(len(rows)):
            prompts.append(_text(path, i, rows, "prompt", ""))
            responses.append(_text(path, i, rows, "response", completion_prefix))
            rewards.append(_number(path, i, rows, "reward"))
            if column is not None and rows[i].get(column) is not None:
                logps.append(_logged_logprob(path, i, rows, column))
            elif need_propensity:
                raise OfflineDataError(f"{path}: row {i + 1}: column {column!r} is empty (the off-policy gradient needs it)")
            else:
                logps.append(float("nan"))
            if need_item_rewards:
                if "item_rewards" not in present:
                    raise OfflineDataError(f"{path}: missing column 'item_rewards' (per-item credit needs what each item "
                                           f"of the response earned; `feedbackrl logs convert` writes it)")
                items.append(_item_rewards(path, i, rows, responses[-1]))
    logged = torch.tensor(logps, dtype=torch.float64)
    return TupleData(prompts, responses, torch.tensor(rewards, dtype=torch.float64),
                     None if bool(torch.isnan(logged).all()) else logged, items if need_item_rewards else None)


def load_pairs(paths: Sequence[str | Path], completion_prefix: str = "") -> PairData:
    prompts, chosen, rejected = [], [], []
    for p in paths:
        path = Path(p)
        rows = read_records(path)
        _require(path, rows, ("prompt", "chosen", "rejected"), "preference pairs")
        for i in range(len(rows)):
            prompts.append(_text(path, i, rows, "prompt", ""))
            chosen.append(_text(path, i, rows, "chosen", completion_prefix))
            rejected.append(_text(path, i, rows, "rejected", completion_prefix))
    return PairData(prompts, chosen, rejected)


def prompt_mean_rewards(prompts: Sequence[str], rewards: torch.Tensor) -> torch.Tensor:
    """The mean logged reward of each row's prompt, [N] -> [N]: the per-prompt baseline of
    weighted regression, the value of the logging policy at that prompt estimated from the log."""
    index: dict[str, int] = {}
    ids = torch.tensor([index.setdefault(p, len(index)) for p in prompts])
    sums = torch.zeros(len(index), dtype=rewards.dtype).index_add_(0, ids, rewards)
    counts = torch.zeros(len(index), dtype=rewards.dtype).index_add_(0, ids, torch.ones_like(rewards))
    return (sums / counts)[ids]


def best_responses(prompts: Sequence[str], responses: Sequence[str], rewards: torch.Tensor) -> list[tuple[str, str]]:
    """(prompt, response) with the highest logged reward for each prompt (first one on ties)."""
    best: dict[str, tuple[float, str]] = {}
    for p, r, x in zip(prompts, responses, rewards.tolist()):
        if p not in best or x > best[p][0]:
            best[p] = (x, r)
    return [(p, r) for p, (_, r) in best.items()]
