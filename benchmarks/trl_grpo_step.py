"""Throughput of TRL's `GRPOTrainer` step, mirroring `grpo_step.py` for the comparison.

    <trl venv>/bin/python benchmarks/trl_grpo_step.py --model DIR --prompts 16 --generations 8 --new-tokens 16
        [--steps 5 --warmup 1 --temperature 1.0 --top-p 1.0 --seed 0 --threads N]

Run it through `compare_trl.sh`, which makes a separate venv with TRL (not a feedbackrl
dependency) and puts the repository on PYTHONPATH: the prompts and the exact-answer check come
from `feedbackrl.tasks.arithmetic`, plain Python, so both sides score the same thing.

Settings mirrored from grpo_step.py: prompts x generations completions per step, all generated in
one batch (generation_batch_size) and trained in one batch (per_device_train_batch_size, no
gradient accumulation, so one optimizer step per generation batch), num_iterations=1, beta=0.0
(no reference model), loss_type="grpo" (per-sequence mean, like feedbackrl's seq_mean), the same
clip epsilon, temperature and top_p, no top-k, float32 on CPU (TRL defaults to bf16 and to
gradient checkpointing; both off, as in feedbackrl), transformers' own `generate` (no vLLM), no
logging, saving or evaluation. A step is timed from `on_step_begin` to `on_step_end` (generation,
reward, loss, backward, optimizer step); the first --warmup steps are left out.

The last line is `samples_per_s=X`: prompts x generations / median step seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import tempfile
import time
import warnings

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from feedbackrl.tasks.arithmetic import ArithmeticTask, parse_answer


def exact_answer(prompts, completions, answer, **kwargs) -> list[float]:
    """1 for the exact integer answer, else 0: feedbackrl's ExactAnswerReward without a format bonus."""
    out = []
    for completion, expected in zip(completions, answer):
        got = parse_answer(completion)
        out.append(1.0 if got is not None and got == int(expected) else 0.0)
    return out


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step, of the generation inside it, and the metrics TRL logs for it."""

    def __init__(self, baton=None):
        self.baton = baton
        self.begin: float | None = None
        self.durations: list[float] = []
        self.generate: list[float] = []
        self.ends: list[float] = []
        self.logs: list[dict] = []

    def on_step_begin(self, args, state, control, **kwargs):
        if self.baton is not None:
            self.baton.acquire()
        self.begin = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        now = time.perf_counter()
        self.durations.append(now - self.begin)
        self.ends.append(now)
        if self.baton is not None:
            self.baton.release()

    def wrap_generate(self, trainer: GRPOTrainer) -> None:
        """Time `GRPOTrainer._generate` (tokenise prompts, `model.generate`, decode): the part that
        matches feedbackrl's time/generate_s."""
        inner = trainer._generate

        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                self.generate.append(time.perf_counter() - t0)

        trainer._generate = timed

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs:
            self.logs.append(dict(logs))


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model directory (build it with grpo_step.py --build-model)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    ap.add_argument("--baton", metavar="DIR", help="take turns step by step with grpo_step.py sharing DIR "
                    "(compare_trl.sh INTERLEAVE=1; benchmarks/baton.py)")
    ap.add_argument("--baton-name", choices=["ours", "trl"], default="trl")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)

    import transformers
    import trl

    # TRL's own defaults trip transformers' deprecation warnings (gradient_checkpointing); not ours to fix
    warnings.filterwarnings("ignore", category=FutureWarning)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    total_steps = args.warmup + args.steps
    n = args.prompts * args.generations
    task = ArithmeticTask()
    prompts = task.train_prompts(args.prompts * total_steps, random.Random(args.seed))
    dataset = Dataset.from_list([{"prompt": p.text, "answer": str(p.reference)} for p in prompts])

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    # transformers 5.x renamed gradient_checkpointing (which TRL turns on by default) to activation_checkpointing
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    no_checkpointing = {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": False}
    with tempfile.TemporaryDirectory(prefix="feedbackrl-trl-bench-") as tmp:
        config = GRPOConfig(
            output_dir=tmp,
            use_cpu=True,
            bf16=False,
            fp16=False,
            **no_checkpointing,
            seed=args.seed,
            max_steps=total_steps,
            per_device_train_batch_size=n,
            gradient_accumulation_steps=1,
            generation_batch_size=n,
            num_generations=args.generations,
            max_completion_length=args.new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=0,
            beta=0.0,
            num_iterations=1,
            epsilon=0.2,
            loss_type="grpo",
            scale_rewards="group",
            learning_rate=args.lr,
            lr_scheduler_type="constant",
            max_grad_norm=1.0,
            use_vllm=False,
            logging_steps=1,  # per-step metrics reach StepTimer.on_log; logging runs outside the timed span
            report_to="none",
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
            log_completions=False,
            dataloader_num_workers=0,
        )
        from baton import from_args

        timer = StepTimer(from_args(args.baton, args.baton_name))
        trainer = GRPOTrainer(model=model, reward_funcs=[exact_answer], args=config, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[timer])
        trainer.remove_callback(PrinterCallback)
        timer.wrap_generate(trainer)
        m = trainer.model
        checkpointing = m.is_activation_checkpointing if hasattr(m, "is_activation_checkpointing") else m.is_gradient_checkpointing
        if config.bf16 or config.fp16 or checkpointing:
            raise SystemExit("TRL set up bf16/fp16 or gradient checkpointing; the comparison needs float32 without it")
        print(f"TRL {trl.__version__} GRPO step: model {args.model} ({sum(p.numel() for p in model.parameters()):,} "
              f"params), {args.prompts} prompts x {args.generations} generations = {n} samples, {args.new_tokens} new "
              f"tokens, temperature {args.temperature}, top_p {args.top_p}, torch threads {torch.get_num_threads()}")
        try:
            trainer.train()
        finally:
            if timer.baton is not None:
                timer.baton.finish()

    if len(timer.durations) != total_steps:
        raise SystemExit(f"expected {total_steps} optimizer steps, TRL ran {len(timer.durations)}")
    for i, d in enumerate(timer.durations):
        log = timer.logs[i] if i < len(timer.logs) else {}
        print(f"step {i + 1}{'' if i >= args.warmup else ' (warm-up)'}: {d:.3f} s  generate {timer.generate[i]:.3f}  "
              f"rest (reward, loss, backward, optimizer) {d - timer.generate[i]:.3f}  "
              f"completion {log.get('completions/mean_length', float('nan')):.2f} tokens  "
              f"reward {log.get('reward', float('nan')):.3f}")
    timed = timer.durations[args.warmup:]
    lengths = [log["completions/mean_length"] for log in timer.logs[args.warmup:total_steps]]
    gen = timer.generate[args.warmup:total_steps]
    rest = [d - g for d, g in zip(timed, gen)]
    print(f"over {len(timed)} timed steps:")
    print(f"  generate   mean {statistics.fmean(gen):8.4f} s  median {statistics.median(gen):8.4f} s")
    print(f"  rest       mean {statistics.fmean(rest):8.4f} s  median {statistics.median(rest):8.4f} s")
    print(f"  step       mean {statistics.fmean(timed):8.4f} s  median {statistics.median(timed):8.4f} s")
    # end-to-end intervals also hold the data loader and TRL's logging between steps
    between = [b - a for a, b in zip(timer.ends[args.warmup:], timer.ends[args.warmup + 1:])]
    if between:
        print(f"  end->end   mean {statistics.fmean(between):8.4f} s  median {statistics.median(between):8.4f} s")
    if lengths:
        mean_len = statistics.fmean(lengths)
        print(f"  mean completion length {mean_len:.2f} tokens (max {args.new_tokens})")
        print(f"  generated tokens/s {mean_len * n * len(timed) / sum(gen):.1f} (generation only), "
              f"{mean_len * n * len(timed) / sum(timed):.1f} (whole step)")
    samples_per_s = n / statistics.median(timed)
    print(f"  samples/s {samples_per_s:.1f} (median step), {n * len(timed) / sum(timed):.1f} (mean)")
    print(f"samples_per_s={samples_per_s:.2f}")
    return samples_per_s


if __name__ == "__main__":
    main(sys.argv[1:])
