"""The `feedbackrl train` recipe: task -> model (built if embedded) -> warm start -> online RL
-> summary. Each stage writes into `runs/<name>/` and is skipped when its output is already
there, so a stopped run resumes where it stopped."""

from __future__ import annotations

import json
import random
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable


from feedbackrl.train.seeding import seed_run
from feedbackrl.policy.model import Policy
from feedbackrl.policy.tiny import build_tiny_model
from feedbackrl.tasks.base import Task
from feedbackrl.train import checkpoint as ckpt
from feedbackrl.train.config import RunConfig
from feedbackrl.train.online import OnlineTrainer, evaluate_policy
from feedbackrl.train.sft import train_sft

DONE = ".complete"


def build_task(cfg: RunConfig) -> Task:
    if cfg.task == "arithmetic":
        from feedbackrl.tasks.arithmetic import ArithmeticTask

        return ArithmeticTask(cfg.arithmetic)
    if cfg.task == "shop":
        from feedbackrl.tasks.shop.task import ShopTask
        from feedbackrl.train.shop_calendar import CalendarShopTask, shop_configs_from_dict

        # the day advances with training steps (shop.steps_per_day); 0 keeps it fixed
        task_cfg, run_cfg = shop_configs_from_dict(cfg.shop)
        return CalendarShopTask(ShopTask(task_cfg), run_cfg)
    raise ValueError(f"task: unknown task {cfg.task!r}")


def run_dir_of(cfg: RunConfig) -> Path:
    return Path(cfg.out_dir) / cfg.name


def prepare_model(cfg: RunConfig, task: Task, run_dir: Path) -> Path:
    """The base model directory; the embedded default is built once per run directory."""
    if cfg.model.path != "tiny":
        return Path(cfg.model.path) if Path(cfg.model.path).exists() else cfg.model.path  # hub id
    out = run_dir / "model"
    if not (out / DONE).exists():
        shutil.rmtree(out, ignore_errors=True)
        extra = task.extra_tokens() if hasattr(task, "extra_tokens") else ()
        build_tiny_model(out, task.corpus(), extra_tokens=extra, config=cfg.model.tiny)
        (out / DONE).write_text("")
    return out


def warm_start(cfg: RunConfig, task: Task, base: Path | str, run_dir: Path, log: Callable[[str], None] = print) -> Path | str:
    """Imitation warm start (SFT) from the task's pairs; returns the directory RL starts from."""
    if cfg.sft.steps == 0:
        return base
    out = run_dir / "sft"
    if (out / DONE).exists():
        return out
    seed_run(cfg.seed)
    policy = Policy.load(base, device=cfg.model.device, dtype=cfg.model.dtype)
    pairs = task.sft_pairs(cfg.sft.examples, random.Random(cfg.seed + 1))
    t0 = time.perf_counter()
    with sft_progress(cfg.sft.steps, cfg.progress) as on_step:
        losses = train_sft(policy, pairs, steps=cfg.sft.steps, batch_size=cfg.sft.batch_size, lr=cfg.sft.lr,
                           warmup_steps=cfg.sft.warmup_steps, seed=cfg.seed, on_step=on_step)
    log(f"warm start: {cfg.sft.steps} SFT steps on {len(pairs)} pairs, loss {losses[0]:.3f} -> {losses[-1]:.3f} "
        f"({time.perf_counter() - t0:.1f}s)")
    shutil.rmtree(out, ignore_errors=True)
    policy.save(out)
    (out / DONE).write_text("")
    return out


@contextmanager
def sft_progress(total: int, enabled: bool):
    """A rich bar over the warm start's steps (a line every tenth where there is no terminal);
    yields the `on_step(step, loss)` callback `train_sft` takes."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]warm start (SFT)"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[status]}"), TimeRemainingColumn())
    task = bar.add_task("sft", total=total, status="")
    every = 0 if bar.console.is_terminal else max(1, total // 10)

    def on_step(step: int, loss: float) -> None:
        bar.update(task, completed=step, status=f"loss {loss:.3f}")
        if every and (step % every == 0 or step == total):
            bar.console.print(f"warm start (SFT) {step}/{total}: loss {loss:.3f}")

    with bar:
        yield on_step


def load_policy(cfg: RunConfig, path: Path | str) -> Policy:
    return Policy.load(path, value_head=cfg.algo.name == "ppo", lora=cfg.model.lora,
                       device=cfg.model.device, dtype=cfg.model.dtype)


def train(cfg: RunConfig, *, resume: bool = True, log: Callable[[str], None] = print,
          on_step: Callable[[int, dict], None] | None = None, stop_after: int | None = None,
          task: Task | None = None) -> dict[str, Any]:
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(_config_dict(cfg), indent=2))
    t0 = time.perf_counter()
    seed_run(cfg.seed)
    random.seed(cfg.seed)
    task = task or build_task(cfg)
    base = prepare_model(cfg, task, run_dir)
    start = warm_start(cfg, task, base, run_dir, log)
    latest = ckpt.latest_checkpoint(run_dir) if resume else None
    if latest and cfg.model.lora is not None:
        policy = Policy.load_with_adapter(start, latest / "adapter", device=cfg.model.device, dtype=cfg.model.dtype,
                                          value_head_from=latest if cfg.algo.name == "ppo" else None)
    else:
        policy = load_policy(cfg, latest or start)
    reference = None
    if cfg.algo.kl_coef > 0 and cfg.model.lora is None:
        reference = Policy.load(start, device=cfg.model.device, dtype=cfg.model.dtype).requires_grad_(False).eval()
    trainer = OnlineTrainer(cfg, task, policy, run_dir, reference=reference, on_step=on_step)
    state = ckpt.load_trainer_state(latest) if latest else None
    if latest:
        log(f"resuming from {latest} (step {state['step']})")
    summary = trainer.run(resume_state=state, stop_after=stop_after)
    if summary.get("stopped"):
        return summary
    summary["wall_seconds_total"] = time.perf_counter() - t0
    summary["run_dir"] = str(run_dir)
    summary["checkpoint"] = str(ckpt.latest_checkpoint(run_dir))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def evaluate_checkpoint(path: str | Path, cfg: RunConfig) -> dict[str, float]:
    task = build_task(cfg)
    policy = Policy.load(path, device=cfg.model.device, dtype=cfg.model.dtype)
    constraint = task.constraint(policy.tokenizer) if hasattr(task, "constraint") else None
    metrics, _ = evaluate_policy(policy, task, cfg, constraint)
    return metrics


def _config_dict(cfg: RunConfig) -> dict:
    from dataclasses import asdict

    return asdict(cfg)
