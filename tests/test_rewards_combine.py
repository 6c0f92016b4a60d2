import math

import pytest

from feedbackrl.rewards.base import RewardResult, score_samples
from feedbackrl.rewards.combine import CombinedReward, Component, component_means
from feedbackrl.rewards.pii import PIIGuard
from feedbackrl.rewards.registry import REWARDS, get_reward, register_reward
from feedbackrl.sample import Sample


class FixedReward:
    """Scores from a list (None -> an error), in sample order."""

    def __init__(self, name, scores):
        self.name = name
        self.scores = scores

    def __call__(self, samples):
        return [RewardResult(0.0, {}, "timeout") if s is None else RewardResult(s, {"seen": s}) for s in self.scores[: len(samples)]]


def _samples(n):
    return [Sample(f"p{i}", f"c{i}") for i in range(n)]


def test_weighted_sum_by_hand():
    combined = CombinedReward([
        Component("a", FixedReward("a", [1.0, 0.0, 0.5]), weight=2.0),
        Component("b", FixedReward("b", [0.5, 1.0, 0.0]), weight=-1.0),
    ])
    results = combined(_samples(3))
    assert [r.score for r in results] == [1.5, -1.0, 1.0]  # 2a - b
    assert results[0].details["components"] == {"a": 1.0, "b": 0.5}
    assert results[0].details["by_component"]["a"] == {"seen": 1.0}


def test_batch_z_score_normalisation():
    # a = [1, 2, 3]: mean 2, population std sqrt(2/3) -> z = [-1.2247, 0, 1.2247]
    combined = CombinedReward([
        Component("a", FixedReward("a", [1.0, 2.0, 3.0]), normalize=True),
        Component("flat", FixedReward("flat", [5.0, 5.0, 5.0]), normalize=True),
    ])
    results = combined(_samples(3))
    z = 1 / math.sqrt(2 / 3)
    assert [r.score for r in results] == pytest.approx([-z, 0.0, z])
    assert results[2].details["normalized"] == pytest.approx({"a": z, "flat": 0.0})
    assert results[2].details["components"] == {"a": 3.0, "flat": 5.0}  # raw values kept for logging


def test_errored_values_are_left_out_of_the_batch_statistics():
    combined = CombinedReward([Component("a", FixedReward("a", [1.0, None, 3.0]), normalize=True)])
    ok1, bad, ok2 = combined(_samples(3))
    assert (ok1.score, ok2.score) == pytest.approx((-1.0, 1.0))  # mean 2, std 1 over the two valid
    assert bad.error == "a: timeout"


def test_failed_gate_sets_the_floor_whatever_the_rest_says():
    combined = CombinedReward(
        [
            Component("answer", FixedReward("answer", [1.0, 1.0, None, 1.0])),
            Component("safe", FixedReward("safe", [1.0, 0.0, 0.0, 0.99]), gate=True),
        ],
        floor=-1.0,
    )
    passed, failed, failed_with_error, just_below = combined(_samples(4))
    assert passed.score == 1.0 and passed.details["gate_failed"] is None  # gate weight defaults to 0
    assert failed.score == -1.0 and failed.details["gate_failed"] == "safe"
    # a failed gate decides even when another component could not be scored
    assert failed_with_error.error is None and failed_with_error.score == -1.0
    assert failed_with_error.details["errors"] == {"answer": "timeout"}
    assert just_below.score == -1.0  # default threshold 1.0: anything short of a clean pass fails


def test_gate_threshold_weight_and_errored_gate():
    combined = CombinedReward([
        Component("answer", FixedReward("answer", [1.0, 1.0, 1.0])),
        Component("fmt", FixedReward("fmt", [0.6, 0.4, None]), gate=True, gate_threshold=0.5, weight=0.5),
    ])
    ok, failed, errored = combined(_samples(3))
    assert ok.score == pytest.approx(1.3)
    assert failed.score == 0.0 and failed.details["gate_failed"] == "fmt"
    assert errored.error == "fmt: timeout"


def test_pii_guard_as_gate():
    combined = CombinedReward([
        Component("answer", FixedReward("answer", [1.0, 1.0])),
        Component("pii", PIIGuard(), gate=True),
    ], floor=-1.0)
    samples = [Sample("p", "The answer is 4."), Sample("p", "The answer is 4. Call me at 555-123-4567.")]
    results = score_samples(combined, samples)
    assert [r.score for r in results] == [1.0, -1.0]
    assert samples[1].details["by_component"]["pii"]["counts"]["phone"] == 1


def test_raising_component_becomes_an_error_not_a_crash():
    class Broken:
        name = "broken"

        def __call__(self, samples):
            raise RuntimeError("sandbox down")

    [r] = CombinedReward([Component("ok", FixedReward("ok", [1.0])), Component("broken", Broken())])(_samples(1))
    assert r.error == "broken: RuntimeError: sandbox down"


def test_component_means_for_logging():
    combined = CombinedReward([
        Component("answer", FixedReward("answer", [1.0, 0.0, None, 1.0])),
        Component("safe", FixedReward("safe", [1.0, 0.0, 1.0, 1.0]), gate=True),
    ])
    samples = _samples(4)
    score_samples(combined, samples)
    means = combined.component_means(samples)
    assert means == {"answer": pytest.approx(2 / 3), "safe": 0.75}
    assert component_means(samples)["gate_failed/safe"] == 0.25


def test_from_config_and_registry():
    combined = CombinedReward.from_config({
        "components": [
            {"reward": "exact_match", "name": "answer", "weight": 2.0},
            {"reward": "pii", "gate": True, "args": {"kinds": ["email"]}},
        ],
        "floor": -1,
    })
    assert [c.name for c in combined.components] == ["answer", "pii"]
    samples = [Sample("q", "Paris", reference="paris"), Sample("q", "Paris, write a@b.io", reference="paris")]
    assert [r.score for r in combined(samples)] == [2.0, -1.0]
    same = get_reward("combined", components=[{"reward": "exact_match"}])
    assert same.name == "combined" and same.components[0].name == "exact_match"


@pytest.mark.parametrize(
    "config, message",
    [
        ([{"reward": "nope"}], "unknown reward 'nope'"),
        ([{"weight": 1}], "component 0 needs a 'reward' key"),
        ([{"reward": "math", "wieght": 1}], "unknown keys ['wieght']"),
        ([{"reward": "math", "args": {"timeout": 1}}], "reward 'math':"),
        ([{"reward": "math"}, {"reward": "math"}], "repeated: ['math']"),
        ({"components": []}, "'components' is empty"),
    ],
)
def test_config_errors_are_one_line(config, message):
    with pytest.raises(ValueError) as e:
        CombinedReward.from_config(config)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_register_reward():
    register_reward("test_fixed", lambda scores: FixedReward("test_fixed", scores))
    try:
        assert get_reward("test_fixed", scores=[0.25])(_samples(1))[0].score == 0.25
        with pytest.raises(ValueError, match="already registered"):
            register_reward("test_fixed", FixedReward)
        register_reward("test_fixed", "feedbackrl.rewards.text:TokenF1Reward", replace=True)
        assert get_reward("test_fixed").name == "token_f1"
        register_reward("test_broken", "feedbackrl.rewards.text:NoSuchReward")
        with pytest.raises(ValueError, match="cannot load"):
            get_reward("test_broken")
    finally:
        REWARDS.pop("test_fixed", None)
        REWARDS.pop("test_broken", None)


def test_every_builtin_reward_builds_and_scores():
    for name in ["math", "exact_match", "token_f1", "label_match", "ranking", "rules", "pii"]:
        reward = get_reward(name)
        assert reward.name == name
        assert len(reward([Sample("q", "42", reference="42")])) == 1


def test_function_reward_wraps_a_plain_function():
    from feedbackrl.rewards.function import FunctionReward

    def length_penalty(completion, reference):
        if completion == "boom":
            raise KeyError("no reference")
        return -len(completion) / 100, {"chars": len(completion)}

    reward = FunctionReward(length_penalty)
    assert reward.name == "length_penalty"
    short, broken = reward([Sample("p", "abcd"), Sample("p", "boom")])
    assert short.score == pytest.approx(-0.04) and short.details == {"chars": 4}
    assert broken.error == "KeyError: 'no reference'"
    assert FunctionReward(lambda c, r: 1, name="one")([Sample("p", "x")])[0].score == 1.0


def test_a_module_may_register_what_the_table_already_names():
    from feedbackrl.rewards.text import TokenF1Reward

    register_reward("token_f1", TokenF1Reward)  # same object as the lazy entry: no error
    try:
        assert get_reward("token_f1").name == "token_f1"
    finally:
        REWARDS["token_f1"] = "feedbackrl.rewards.text:TokenF1Reward"
