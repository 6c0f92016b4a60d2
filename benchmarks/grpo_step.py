"""Throughput of feedbackrl's GRPO step on the embedded tiny model.

    .venv/bin/python benchmarks/grpo_step.py [--model DIR] --prompts 16 --generations 8 --new-tokens 16
        [--steps 5 --warmup 1 --temperature 1.0 --top-p 1.0 --seed 0 --threads N --profile]
        [--no-fast-decode --no-reuse-sampling-pass --skip-zero-advantage] [--breakdown]

Times `OnlineTrainer.train_step` (generate -> score -> advantages -> update), the real loop, not a
re-implementation of it, and splits each step into generation, scoring and update. One update
epoch with the whole batch as the minibatch (one optimizer step per GRPO step) and kl_coef 0 (no
reference model), the settings `trl_grpo_step.py` mirrors. The model should be freshly built
(untrained): then EOS is rare and completions run to about --new-tokens for both frameworks, so
both do the same amount of work; the mean completion length is printed to check that. The
untrained model also answers no problem right, so every group's rewards are equal: the loop's
skip of zero-advantage rows (`algo.skip_zero_advantage`) would then run one row in the update,
which measures the skip, not the step TRL runs. It is off here unless `--skip-zero-advantage`
(its effect on a real run: benchmarks/README.md). The update's replay of the sampling pass
(`algo.reuse_sampling_pass`: the same gradient from a backward pass only) is on, as in every run;
`--no-reuse-sampling-pass` turns it off.

`--breakdown` also times the step's parts in place (prompt pass, decode steps, the update's
replayed forward, each hand-written backward, clipping, optimizer: `step_parts.py`) and prints
their medians.

The last line is `samples_per_s=X`: prompts x generations / median step seconds.
`--build-model DIR` only builds the tiny model (arithmetic corpus) into DIR, for compare_trl.sh.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build_benchmark_model(out_dir: str | Path, hidden: int | None = None, layers: int | None = None,
                          heads: int | None = None) -> Path:
    """The tiny Llama + BPE tokenizer on the arithmetic task's corpus, freshly initialised.
    `hidden`/`layers`/`heads` override the embedded default's sizes (a larger model for a GPU)."""
    from feedbackrl.policy.tiny import TinyModelConfig, build_tiny_model
    from feedbackrl.tasks.arithmetic import ArithmeticTask

    config = TinyModelConfig()
    if hidden:
        config.hidden_size, config.intermediate_size = hidden, 3 * hidden
    if layers:
        config.num_layers = layers
    if heads:
        config.num_heads = heads
    return build_tiny_model(out_dir, ArithmeticTask().corpus(), config=config)


def run_config(args: argparse.Namespace, out_dir: str):
    from feedbackrl.train.config import RunConfig

    cfg = RunConfig(name="grpo-step-bench", seed=args.seed, out_dir=out_dir, steps=args.warmup + args.steps)
    cfg.batch_size = args.prompts * args.generations
    cfg.algo.name = "grpo"
    cfg.algo.group_size = args.generations
    cfg.algo.epochs = 1
    cfg.algo.minibatch_size = cfg.batch_size  # one optimizer step per GRPO step, as TRL does here
    cfg.algo.kl_coef = 0.0  # no reference model (TRL: beta=0.0)
    cfg.algo.skip_zero_advantage = args.skip_zero_advantage  # TRL runs every row
    cfg.algo.reuse_sampling_pass = not args.no_reuse_sampling_pass
    cfg.generation.max_new_tokens = args.new_tokens
    cfg.generation.temperature = args.temperature
    cfg.generation.top_p = args.top_p
    cfg.generation.fast_decode = not args.no_fast_decode
    cfg.optim.lr = args.lr
    # the step, not audit files, logs or progress bars
    cfg.log_rollouts = False
    cfg.progress = False
    cfg.tensorboard = False
    cfg.validate()
    cfg.algo.validate()
    cfg.generation.validate()
    return cfg


def describe(name: str, values: list[float]) -> str:
    return f"{name:<10} mean {statistics.fmean(values):8.4f} s  median {statistics.median(values):8.4f} s"


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model directory; default: build the tiny model into a temp dir")
    ap.add_argument("--build-model", metavar="DIR", help="only build the tiny benchmark model into DIR and exit")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--generations", type=int, default=8, help="completions per prompt (GRPO group size)")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--hidden", type=int, help="hidden size of the built model (default: the embedded 128)")
    ap.add_argument("--layers", type=int, help="layers of the built model (default: the embedded 4)")
    ap.add_argument("--heads", type=int, help="attention heads of the built model (default: the embedded 4)")
    ap.add_argument("--profile", action="store_true", help="cProfile the timed steps and print the top functions")
    ap.add_argument("--no-fast-decode", action="store_true",
                    help="sample through the model's own forward, not feedbackrl's LlamaDecoder")
    ap.add_argument("--skip-zero-advantage", action="store_true",
                    help="let rows whose advantage is 0 skip the update's pass (the loop's default; off here)")
    ap.add_argument("--no-reuse-sampling-pass", action="store_true",
                    help="run the update's forward pass instead of replaying the sampling pass's record")
    ap.add_argument("--alternate-replay", action="store_true",
                    help="A/B in one process: the replay of the sampling pass on in even steps, off in odd ones; "
                         "prints the medians of each (the headline figure is then over both)")
    ap.add_argument("--breakdown", action="store_true",
                    help="time the step's parts in place (benchmarks/step_parts.py) and print their medians")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own choice)")
    ap.add_argument("--baton", metavar="DIR", help="take turns step by step with another benchmark sharing DIR "
                    "(compare_trl.sh INTERLEAVE=1; benchmarks/baton.py)")
    ap.add_argument("--baton-name", choices=["ours", "trl"], default="ours")
    args = ap.parse_args(argv)

    if args.build_model:
        print(f"built {build_benchmark_model(args.build_model, args.hidden, args.layers, args.heads)}")
        return 0.0

    import torch

    from baton import from_args
    from step_parts import StepParts
    from feedbackrl.policy.model import Policy
    from feedbackrl.tasks.arithmetic import ArithmeticTask
    from feedbackrl.train.online import OnlineTrainer

    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="feedbackrl-grpo-bench-") as tmp:
        model_dir = args.model or str(build_benchmark_model(Path(tmp) / "model", args.hidden, args.layers, args.heads))
        cfg = run_config(args, tmp)
        cfg.model.device, cfg.model.dtype = args.device, args.dtype
        policy = Policy.load(model_dir, device=args.device, dtype=args.dtype)
        trainer = OnlineTrainer(cfg, ArithmeticTask(cfg.arithmetic), policy, Path(tmp) / "run")
        n = cfg.batch_size
        print(f"feedbackrl GRPO step: model {model_dir} ({sum(p.numel() for p in policy.parameters()):,} params), "
              f"{args.prompts} prompts x {args.generations} generations = {n} samples, {args.new_tokens} new tokens, "
              f"temperature {args.temperature}, top_p {args.top_p}, {args.device} {args.dtype}, "
              f"torch threads {torch.get_num_threads()}, "
              f"fast decode {'on' if cfg.generation.fast_decode else 'off'}, "
              f"zero-advantage skip {'on' if cfg.algo.skip_zero_advantage else 'off'}, "
              f"sampling-pass replay {'on' if cfg.algo.reuse_sampling_pass else 'off'}")

        profiler = cProfile.Profile() if args.profile else None
        parts = StepParts().install(trainer.optimizer) if args.breakdown else None
        rows = []
        baton = from_args(args.baton, args.baton_name)
        try:
            for i in range(args.warmup + args.steps):
                timed = i >= args.warmup
                if baton is not None:
                    baton.acquire()
                if profiler is not None and timed:
                    profiler.enable()
                if args.alternate_replay:
                    trainer.cfg.algo.reuse_sampling_pass = i % 2 == 0
                t0 = time.perf_counter()
                m = trainer.train_step()
                trainer.step += 1
                trainer.scheduler.step()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                wall = time.perf_counter() - t0
                if baton is not None:
                    baton.release()
                if profiler is not None and timed:
                    profiler.disable()
                tokens = m["completion_tokens/mean"] * n
                print(f"step {i + 1}{'' if timed else ' (warm-up)'}: {wall:.3f} s  generate {m['time/generate_s']:.3f}  "
                      f"score {m['time/score_s']:.4f}  update {m['time/update_s']:.3f}  "
                      f"completion {m['completion_tokens/mean']:.2f} tokens  reward {m['reward/mean']:.3f}")
                if timed:
                    rows.append({"step": wall, "generate": m["time/generate_s"], "score": m["time/score_s"],
                                 "update": m["time/update_s"], "tokens": tokens, "length": m["completion_tokens/mean"],
                                 "replayed": m.get("update/replayed", 0.0)})
                if parts is not None:
                    if timed:
                        parts.end_step({"generate": m["time/generate_s"], "update": m["time/update_s"]})
                    else:
                        parts.discard_step()
        finally:
            if parts is not None:
                parts.uninstall()

    if baton is not None:
        baton.finish()
    # what train_step does outside generate/score/update (collate, advantages) is "other"
    for r in rows:
        r["other"] = r["step"] - r["generate"] - r["score"] - r["update"]
    if args.alternate_replay:
        for on in (True, False):
            part = [r for r in rows if (r["replayed"] > 0) == on]
            if part:
                print(f"replay {'on ' if on else 'off'} ({len(part)} steps): " + ", ".join(
                    f"{key} median {statistics.median(r[key] for r in part):.4f} s"
                    for key in ("generate", "update", "step")))
    print(f"over {len(rows)} timed steps:")
    for key in ("generate", "score", "update", "other", "step"):
        print("  " + describe(key, [r[key] for r in rows]))
    gen_tokens = sum(r["tokens"] for r in rows)
    print(f"  mean completion length {statistics.fmean(r['length'] for r in rows):.2f} tokens "
          f"(max {args.new_tokens})")
    print(f"  generated tokens/s {gen_tokens / sum(r['generate'] for r in rows):.1f} (generation only), "
          f"{gen_tokens / sum(r['step'] for r in rows):.1f} (whole step)")
    samples_per_s = n / statistics.median(r["step"] for r in rows)
    print(f"  samples/s {samples_per_s:.1f} (median step), {n * len(rows) / sum(r['step'] for r in rows):.1f} (mean)")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        out.write("\n")
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())
    if parts is not None:
        print(parts.report())
    print(f"samples_per_s={samples_per_s:.2f}")
    return samples_per_s


if __name__ == "__main__":
    main(sys.argv[1:])
