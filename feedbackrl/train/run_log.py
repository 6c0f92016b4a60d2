"""Where a run's figures go: `metrics.jsonl` (one line per step), TensorBoard when installed,
and a live rich progress bar showing step, reward, KL and seconds per step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class RunLog:
    def __init__(self, run_dir: Path, total_steps: int, *, progress: bool = True, tensorboard: bool = True,
                 description: str = "train", resume: bool = False):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if not resume:
            self.metrics_path.write_text("")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self._tb = None
        self._progress = None
        if progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeRemainingColumn(), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(description, total=total_steps, status="")
            # a log file or CI console shows no live bar: print a line every tenth of the run
            self._plain_every = (0 if self._progress.console.is_terminal
                                 else max(1, total_steps // 10))
            self._description, self._total = description, total_steps

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines past the checkpoint's step (they will be produced again)."""
        if not self.metrics_path.exists():
            return
        keep = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue
        self.metrics_path.write_text("".join(l + "\n" for l in keep))
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(float(v)):
                    self._tb.add_scalar(k, v, step)
        if self._progress is not None:
            status = f"reward {metrics.get('reward/mean', float('nan')):.3f}  kl {metrics.get('kl', 0.0):.4f}  {metrics.get('time/step_s', 0.0):.2f}s/step"
            self._progress.update(self._task, completed=step, status=status)
            if self._plain_every and (step % self._plain_every == 0 or step == self._total):
                self._progress.console.print(f"{self._description} {step}/{self._total}: {status}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
