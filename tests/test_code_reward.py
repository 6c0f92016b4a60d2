"""CodeReward: code extraction, program assembly, scores, details, and errors that are errors."""

from __future__ import annotations

from feedbackrl.rewards.base import RewardFn, score_samples
from feedbackrl.rewards.code import CodeReward, CodeRewardConfig, build_job, extract_code
from feedbackrl.rewards.sandbox import SandboxConfig
from feedbackrl.sample import Sample

PROMPT = "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    \"\"\"Sum of xs.\"\"\"\n"
CHECK = "def check(candidate):\n    assert candidate([1, 2]) == 3\n    assert candidate([]) == 0\n"
REFERENCE = {"tests": [CHECK], "entry_point": "total", "prompt": PROMPT, "setup": PROMPT}


def test_extract_code_prefers_the_fence_that_defines_the_entry_point():
    text = "Example:\n```python\nprint(total([1]))\n```\nSolution:\n```python\ndef total(xs):\n    return sum(xs)\n```\n"
    assert extract_code(text, "total") == "def total(xs):\n    return sum(xs)\n"
    assert extract_code(text) == "print(total([1]))\n"
    assert extract_code("```\nx = 1\n```") == "x = 1\n"
    assert extract_code("    return sum(xs)\n") == "    return sum(xs)\n"
    assert extract_code("```python\ndef f():\n    return 1\n") == "def f():\n    return 1\n"  # unclosed fence


def test_build_job_continues_the_prompt_or_keeps_its_imports():
    body = build_job("    return sum(xs)\n", REFERENCE)
    assert body.solution == PROMPT + "    return sum(xs)\n"
    whole = build_job("```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```", REFERENCE)
    assert whole.solution.startswith("from typing import List\n") and "def total" in whole.solution
    assert build_job("x = 1", "assert x == 1").tests == ["assert x == 1"]


def test_scores_details_and_partial_credit():
    reward = CodeReward(CodeRewardConfig(sandbox=SandboxConfig(timeout_s=5.0), workers=2))
    try:
        assert isinstance(reward, RewardFn) and reward.name == "code"
        samples = [Sample(PROMPT, "    return sum(xs)\n", reference=REFERENCE),
                   Sample(PROMPT, "```python\ndef total(xs):\n    return 3\n```", reference=REFERENCE),
                   Sample("", "while True: pass", reference={"tests": ["assert True"]})]
        reward.config.sandbox.timeout_s = 1.0
        good, bad, loop = score_samples(reward, samples)
        assert (good.score, good.error, good.details["status"]) == (1.0, None, "passed")
        assert (bad.score, bad.error, bad.details["status"]) == (0.0, None, "failed")
        assert bad.details["failing_test"] == "assert candidate([]) == 0"
        assert (loop.score, loop.details["status"]) == (0.0, "timeout")
        assert [s.reward for s in samples] == [1.0, 0.0, 0.0]
    finally:
        reward.close()
    partial = CodeReward(CodeRewardConfig(partial_credit=True, workers=1))
    try:
        sample = Sample("", "def sq(x):\n    return 4", reference={"tests": ["assert sq(2) == 4", "assert sq(3) == 9"]})
        assert partial([sample])[0].score == 0.5
    finally:
        partial.close()


def test_infrastructure_failure_becomes_reward_error(monkeypatch):
    from feedbackrl.rewards import sandbox_isolation

    monkeypatch.setattr(sandbox_isolation, "python_install", lambda: ("/nonexistent/python3", "/nonexistent"))
    reward = CodeReward(CodeRewardConfig(sandbox=SandboxConfig(isolation="rlimits"), workers=1))
    try:
        sample = Sample(PROMPT, "    return sum(xs)\n", reference=REFERENCE)
        (result,) = score_samples(reward, [sample])
        assert result.error and result.error.startswith("sandbox:")
        assert sample.reward is None and sample.error == result.error
    finally:
        reward.close()


def test_bad_reference_is_an_error_not_a_zero():
    reward = CodeReward(CodeRewardConfig(workers=1))
    try:
        (result,) = reward([Sample("", "x = 1", reference={"no": "tests"})])
        assert result.error and "reference" in result.error
    finally:
        reward.close()
