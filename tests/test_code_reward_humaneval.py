"""HumanEval through the sandbox: canonical solutions pass, `return None` bodies fail."""

from __future__ import annotations

import ast

import pytest

from feedbackrl.rewards.code import CodeReward, CodeRewardConfig
from feedbackrl.rewards.sandbox import SandboxConfig, SandboxPool
from feedbackrl.sample import Sample
from feedbackrl.tasks.humaneval import HumanEvalTask, body_of, humaneval_data_path, load_humaneval


def test_loads_the_164_bundled_problems():
    problems = load_humaneval()
    assert humaneval_data_path().name == "HumanEval.jsonl.gz"
    assert len(problems) == 164 and len({p.task_id for p in problems}) == 164
    assert problems[0].task_id == "HumanEval/0" and problems[0].entry_point == "has_close_elements"


def test_broken_programs_keep_the_prompt_and_return_none():
    for p in load_humaneval():
        broken = p.broken_program()
        assert broken.startswith(p.prompt.rstrip(" \t"))
        body = body_of(broken, p.entry_point)
        last = body[-1]
        assert isinstance(last, ast.Return) and isinstance(last.value, ast.Constant) and last.value.value is None
        # Only what the prompt itself put in the function (the docstring, HumanEval/115's
        # `import math`) comes before it: the real body is gone.
        from_prompt = body_of(p.prompt, p.entry_point)
        assert [ast.dump(s) for s in body[:-1]] == [ast.dump(s) for s in from_prompt], p.task_id


def _run_all(problems):
    jobs = [p.job(p.canonical_program()) for p in problems] + [p.job(p.broken_program()) for p in problems]
    with SandboxPool(config=SandboxConfig(timeout_s=20.0)) as pool:
        results = pool.run(jobs)
    return results[: len(problems)], results[len(problems):]


def test_a_sample_of_problems_canonical_pass_broken_fail():
    problems = load_humaneval()[::16] + [load_humaneval()[32], load_humaneval()[33], load_humaneval()[38]]
    canonical, broken = _run_all(problems)
    assert [(p.task_id, r.status) for p, r in zip(problems, canonical) if not r.passed] == []
    assert [p.task_id for p, r in zip(problems, broken) if r.passed or r.error] == []


@pytest.mark.slow
def test_all_164_canonical_pass_and_all_broken_fail():
    problems = load_humaneval()
    canonical, broken = _run_all(problems)
    assert [(p.task_id, r.status, r.message) for p, r in zip(problems, canonical) if not r.passed] == []
    assert [p.task_id for p, r in zip(problems, broken) if r.passed or r.error] == []


def test_task_evaluates_pass_at_one_with_the_code_reward():
    problems = load_humaneval()[:4]
    task = HumanEvalTask(problems, reward=CodeReward(CodeRewardConfig(workers=2)))
    try:
        prompts = task.eval_prompts()
        samples = [Sample(pr.text, p.canonical_solution if i % 2 == 0 else "    return None\n", reference=pr.reference)
                   for i, (pr, p) in enumerate(zip(prompts, problems))]
        assert task.evaluate(samples) == {"pass@1": 0.5, "scored": 4.0}
    finally:
        task.reward().close()
