import pytest

from feedbackrl.rewards.text import (
    NOT_ENOUGH_INFO,
    REFUTED,
    SUPPORTED,
    ExactMatchReward,
    LabelMatchReward,
    TokenF1Reward,
    canonical_label,
    normalize_answer,
    token_f1,
)
from feedbackrl.sample import Sample


def test_squad_normalisation():
    assert normalize_answer("  The  Eiffel-Tower, in PARIS! ") == "eiffeltower in paris"
    assert normalize_answer("An apple a day") == "apple day"
    # "theory" keeps its "the": articles are whole words only
    assert normalize_answer("the theory") == "theory"


def test_exact_match_max_over_golds():
    samples = [
        Sample("q", "the Eiffel Tower.", reference=["Tour Eiffel", "Eiffel Tower"]),
        Sample("q", "Eiffel", reference=["Eiffel Tower"]),
        Sample("q", "Paris", reference={"answers": ["paris", "Paris, France"]}),
    ]
    results = ExactMatchReward()(samples)
    assert [r.score for r in results] == [1.0, 0.0, 1.0]
    assert results[0].details["best_gold"] == "eiffel tower"


@pytest.mark.parametrize(
    "prediction, gold, f1",
    [
        # pred tokens {cat, sat, on, mat}, gold {cat, on, mat}: P = 3/4, R = 1, F1 = 6/7
        ("the cat sat on the mat", "a cat on a mat", 6 / 7),
        # repeated tokens count once per occurrence in both: common 1, P = 1/3, R = 1 -> 1/2
        ("Paris Paris France", "Paris", 0.5),
        # common 2 (paris, paris), P = 2/2, R = 2/3 -> 0.8
        ("paris paris", "paris paris france", 0.8),
        ("London", "Paris", 0.0),
        ("", "", 1.0),
        ("the", "Paris", 0.0),  # the prediction normalises to nothing
    ],
)
def test_token_f1_hand_cases(prediction, gold, f1):
    assert token_f1(prediction, gold) == pytest.approx(f1)


def test_token_f1_reward_takes_best_gold():
    # vs "York": P = 1/3, R = 1 -> 0.5;  vs "New York": P = 2/3, R = 1 -> 0.8
    [r] = TokenF1Reward()([Sample("q", "New York City", reference=["York", "New York"])])
    assert r.score == pytest.approx(0.8)
    assert r.details["best_gold"] == "new york"


def test_missing_reference_is_an_error():
    [r] = TokenF1Reward()([Sample("q", "x", reference=None)])
    assert r.error == "missing reference answer"


@pytest.mark.parametrize(
    "text, label",
    [
        ("SUPPORTS", SUPPORTED),
        ("supported", SUPPORTED),
        ("True", SUPPORTED),
        ("yes", SUPPORTED),
        ("REFUTES", REFUTED),
        ("The claim is false.", REFUTED),
        ("The claim is not supported by the evidence.", REFUTED),
        ("NEI", NOT_ENOUGH_INFO),
        ("NOT_ENOUGH_INFO", NOT_ENOUGH_INFO),
        ("There is not enough information to decide.", NOT_ENOUGH_INFO),
        ("The evidence supports part of it.\nVerdict: not enough info", NOT_ENOUGH_INFO),
        ("supported and refuted", None),
        ("there is no answer", None),  # "no" counts only as the whole answer
    ],
)
def test_canonical_label(text, label):
    assert canonical_label(text)[0] == label


def test_label_match_reward():
    samples = [
        Sample("c", "Label: NEI", reference="NOT ENOUGH INFO"),
        Sample("c", "refuted", reference={"label": "SUPPORTS"}),
        Sample("c", "supported", reference="maybe"),
    ]
    good, wrong, bad_ref = LabelMatchReward()(samples)
    assert good.score == 1.0 and good.details == {"predicted": NOT_ENOUGH_INFO, "gold": NOT_ENOUGH_INFO, "how": "label line"}
    assert wrong.score == 0.0 and wrong.details["predicted"] == REFUTED
    assert bad_ref.error is not None and "maybe" in bad_ref.error
