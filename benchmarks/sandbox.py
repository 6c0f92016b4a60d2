"""Sandbox throughput on HumanEval: 164 canonical + 164 broken programs through the pool.

    .venv/bin/python benchmarks/sandbox.py [--workers N] [--isolation auto|bwrap|rlimits]

Every run is a fresh sandboxed process with full isolation. Prints where the time goes (wall,
CPU of the sandboxes, CPU of this process) and ends with exactly one line:
    canonical_passed=N broken_passed=M execs_per_s=X
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections import Counter

from feedbackrl.rewards.sandbox import SandboxConfig, SandboxPool
from feedbackrl.rewards.sandbox_isolation import isolation_mode
from feedbackrl.tasks.humaneval import load_humaneval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="parallel sandboxes (default: the pool's, 3 per core)")
    parser.add_argument("--isolation", default="auto", choices=("auto", "bwrap", "rlimits"))
    parser.add_argument("--timeout", type=float, default=20.0, help="per-run wall-clock limit, seconds")
    args = parser.parse_args()

    problems = load_humaneval()
    jobs = [p.job(p.canonical_program()) for p in problems] + [p.job(p.broken_program()) for p in problems]
    config = SandboxConfig(timeout_s=args.timeout, isolation=args.isolation)
    mode = isolation_mode(args.isolation)
    with SandboxPool(workers=args.workers, config=config) as pool:
        pool.run(jobs[:pool.workers])  # warm the page cache and the thread pool
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        results = pool.run(jobs)
        wall = time.perf_counter() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        parent = resource.getrusage(resource.RUSAGE_SELF)

    canonical, broken = results[: len(problems)], results[len(problems):]
    child_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
    self_cpu = (parent.ru_utime - self_before.ru_utime) + (parent.ru_stime - self_before.ru_stime)
    slowest = max(zip((r.duration_s for r in results), (p.task_id for p in problems + problems)))
    print(f"isolation={mode} workers={pool.workers} cores={os.cpu_count()} runs={len(jobs)} wall_s={wall:.2f}")
    print(f"sandbox_cpu_ms_per_run={1000 * child_cpu / len(jobs):.1f} parent_cpu_ms_per_run={1000 * self_cpu / len(jobs):.1f} "
          f"slowest={slowest[1]}:{slowest[0]:.2f}s")
    print(f"canonical_status={dict(Counter(r.status for r in canonical))} broken_status={dict(Counter(r.status for r in broken))}")
    errors = [r.error for r in results if r.error]
    if errors:
        print(f"errors={len(errors)} first={errors[0]}", file=sys.stderr)
    print(f"canonical_passed={sum(r.passed for r in canonical)} broken_passed={sum(r.passed for r in broken)} "
          f"execs_per_s={len(jobs) / wall:.1f}")


if __name__ == "__main__":
    main()
