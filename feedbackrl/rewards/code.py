"""Code reward: run the completion's Python against the sample's unit tests in the sandbox.

`sample.reference` holds the tests, either as a string of statements (asserts) or as a dict:

    {"tests": str | list[str],      # test groups; with entry_point each defines check(candidate)
     "entry_point": "add",          # optional: the function the tests call as `candidate`
     "prompt": "def add(a, b):\\n", # optional: the prompt the completion continues
     "setup": "..."}                # optional trusted code run before the tests (HumanEval: the prompt)

The code is the first ```python (or bare ```) fence that defines the entry point (else the first
fence), or the raw completion when there is no fence. A completion that does not define the
entry point but has a prompt is the body that continues the prompt (HumanEval style).

Score 1.0 when every test group passes, else 0.0, or the fraction of groups that pass with
`partial_credit`. A sandbox that could not run sets `RewardResult.error` (the loop masks it)
instead of scoring 0: a broken sandbox must not teach the policy that its code is wrong.
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

from feedbackrl.rewards.base import RewardResult
from feedbackrl.rewards.sandbox import SandboxConfig, SandboxJob, SandboxPool, SandboxResult
from feedbackrl.sample import Sample

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3"}
_IMPORT = re.compile(r"^(?:import\s|from\s+\S+\s+import\s)")


@dataclass
class CodeRewardConfig:
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    workers: int | None = None  # parallel sandboxes; None = SandboxPool's default (3 per core)
    partial_credit: bool = False  # score = fraction of test groups passed instead of 0/1


def extract_code(completion: str, entry_point: str | None = None) -> str:
    """The Python code in a completion: a fenced block, or the whole text."""
    blocks = [body for tag, body in _FENCE.findall(completion) if tag.lower() in _PYTHON_TAGS]
    if not blocks:
        return completion
    if entry_point:
        for body in blocks:
            if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", body, re.MULTILINE):
                return body
    return blocks[0]


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def build_job(completion: str, reference: Any) -> SandboxJob:
    """The sandbox job for one completion and its reference (see the module docstring)."""
    if isinstance(reference, str):
        return SandboxJob(solution=extract_code(completion), tests=[reference])
    if not isinstance(reference, dict) or "tests" not in reference:
        raise ValueError("code reward needs sample.reference to be test code or a dict with 'tests'")
    tests = reference["tests"]
    tests = [tests] if isinstance(tests, str) else list(tests)
    entry_point, prompt = reference.get("entry_point"), reference.get("prompt")
    code = extract_code(completion, entry_point)
    if entry_point and prompt and not _defines(code, entry_point):
        program = prompt + code  # the completion is the body that continues the prompt
    elif prompt:
        # A whole function: keep the prompt's imports (`from typing import List`) it may rely on.
        imports = [line for line in prompt.splitlines() if _IMPORT.match(line)]
        program = "\n".join(imports + [code]) if imports else code
    else:
        program = code
    return SandboxJob(solution=program, tests=tests, entry_point=entry_point, setup=reference.get("setup"))


def to_reward_result(result: SandboxResult, partial_credit: bool = False) -> RewardResult:
    details = {"status": result.status, "tests_passed": result.tests_passed, "tests_total": result.tests_total,
               "failing_test": result.failing_test, "message": result.message,
               "stderr_tail": result.stderr[-500:], "duration_s": round(result.duration_s, 4)}
    if result.error:
        return RewardResult(0.0, details, error=f"sandbox: {result.error}")
    if partial_credit and result.tests_total:
        score = result.tests_passed / result.tests_total
    else:
        score = 1.0 if result.passed else 0.0
    return RewardResult(score, details)


class CodeReward:
    """A `RewardFn` that scores completions by running their code against unit tests."""

    name = "code"

    def __init__(self, config: CodeRewardConfig | None = None, pool: SandboxPool | None = None):
        self.config = config or CodeRewardConfig()
        self._pool = pool
        self._owns_pool = pool is None

    @property
    def pool(self) -> SandboxPool:
        if self._pool is None:  # created on first use: building a reward must not spawn threads
            self._pool = SandboxPool(self.config.workers, self.config.sandbox)
        return self._pool

    def submit(self, sample: Sample) -> Future[RewardResult]:
        """Start scoring one sample; the future holds its `RewardResult`."""
        done: Future[RewardResult] = Future()
        try:
            job = build_job(sample.completion, sample.reference)
        except ValueError as e:
            done.set_result(RewardResult(0.0, {}, error=str(e)))
            return done
        running = self.pool.submit(job)

        def finish(f: Future[SandboxResult]) -> None:
            try:
                done.set_result(to_reward_result(f.result(), self.config.partial_credit))
            except Exception as e:  # noqa: BLE001 - the pool itself broke: an infrastructure error
                done.set_result(RewardResult(0.0, {}, error=f"sandbox: {type(e).__name__}: {e}"))

        running.add_done_callback(finish)
        return done

    def __call__(self, samples: Sequence[Sample]) -> list[RewardResult]:
        return [f.result() for f in [self.submit(s) for s in samples]]

    def close(self) -> None:
        if self._pool is not None and self._owns_pool:
            self._pool.close()
            self._pool = None
