"""Checkpoints that resume exactly.

A checkpoint directory holds the policy (`save_pretrained` layout, so it loads like any HF
model), and `trainer_state.pt`: optimizer, scheduler, every RNG the loop draws from, the step
and the loop's own counters. The pointer file `latest` is written last, atomically (write a
temporary file, fsync, rename), so a crash mid-save leaves the previous checkpoint current.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "latest"
STATE_FILE = "trainer_state.pt"


def rng_state(generator: torch.Generator | None = None, py_rng: random.Random | None = None) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "generator": generator.get_state() if generator is not None else None,
        "task_rng": py_rng.getstate() if py_rng is not None else None,
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None, py_rng: random.Random | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if generator is not None and state.get("generator") is not None:
        generator.set_state(state["generator"])
    if py_rng is not None and state.get("task_rng") is not None:
        py_rng.setstate(state["task_rng"])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, step: int, policy, state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoints/step-XXXXXX, then point `latest` at it; keep the newest `keep`."""
    root = Path(run_dir) / "checkpoints"
    target = root / f"step-{step:06d}"
    partial = root / f".partial-step-{step:06d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    policy.save(partial)
    torch.save(state, partial / STATE_FILE)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    _atomic_write(root / LATEST, target.name)
    older = sorted(p for p in root.glob("step-*") if p.is_dir() and p != target)
    for p in older[: max(len(older) - (keep - 1), 0)]:
        shutil.rmtree(p, ignore_errors=True)
    return target


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    target = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    return target if (target / STATE_FILE).exists() else None


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(Path(checkpoint) / STATE_FILE, map_location="cpu", weights_only=False)
